// The demo host page: takes the customer token from the URL fragment (browsers never send it to
// servers), drops it from the address bar, and embeds the widget the way a site would.
(function () {
  "use strict";
  var params = new URLSearchParams(location.hash.slice(1));
  var token = params.get("token") || sessionStorage.getItem("demo-token");
  if (!token) { document.getElementById("demo-hint").hidden = false; return; }
  sessionStorage.setItem("demo-token", token);
  params.delete("token");                       // out of the address bar; other settings stay
  history.replaceState(null, "", location.pathname + location.search + (params.toString() ? "#" + params : ""));
  var tag = document.createElement("script");
  tag.src = "/static/widget.js";
  tag.async = true;
  tag.onload = function () {
    window.SupportWidget.init({
      token: token,
      // The fake booking site's widget serves `bookings` (the demo agent Alex's department);
      // #department=billing picks another, #department= (empty) offers the "what is it about?" choice.
      department: params.has("department") ? params.get("department") || undefined : "bookings",
      departments: params.get("departments") ? params.get("departments").split(",") : undefined,
      title: "Seaside Stays Support",
      subtitle: "We usually reply in a few minutes",
      open: params.has("open"),
    });
  };
  document.head.appendChild(tag);
})();

"""Between the services' dicts (the REST JSON's shape) and protobuf messages, by field name.

Because proto field names mirror the REST JSON, one generic walk over a message's descriptor
does every conversion:

- :func:`to_message` fills a message from a service's dict: UUIDs become strings, datetimes
  Timestamps, dicts Structs (or nested messages), the REST strings of an enum its value
  (``"in_progress"`` → ``TICKET_STATUS_IN_PROGRESS``); ``None`` leaves a field unset.
- :func:`request_fields` reads a request: only the fields the caller set (``optional``
  scalars and messages by presence, plain scalars when not zero, enums when not UNSPECIFIED),
  in JSON form (strings for times), ready for the same marshmallow schema REST uses.
- :func:`to_dict` reads any message back into the REST JSON's shape (tests compare the two).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import re
import uuid
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from app.jsonutil import to_jsonable

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_STRUCT = Struct.DESCRIPTOR.full_name
_STRING_LIST = "support.v1.StringList"


@functools.cache
def _enum_prefix(enum: EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def enum_number(enum: EnumDescriptor, value: str) -> int:
    found = enum.values_by_name.get(_enum_prefix(enum) + str(value).upper())
    if found is None:
        raise ValueError(f"{value!r} is not a {enum.name}")
    return found.number


def enum_text(enum: EnumDescriptor, number: int) -> str | None:
    """The REST string of an enum value; None for UNSPECIFIED (0)."""
    if number == 0:
        return None
    return enum.values_by_number[number].name[len(_enum_prefix(enum)) :].lower()


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _from_struct_value(value: Any) -> Any:
    """Struct numbers are doubles; whole ones come back as ints, as the JSON had them."""
    if isinstance(value, dict):
        return {k: _from_struct_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_struct_value(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def struct_to_dict(struct: Struct) -> dict:
    return _from_struct_value(json_format.MessageToDict(struct))


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None:
        return value if isinstance(value, int) and not isinstance(value, bool) else enum_number(field.enum_type, value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT) and isinstance(value, int):
        return float(value)
    if field.type == FieldDescriptor.TYPE_STRING and not isinstance(value, str):
        return str(value)
    return value


def _fill_message(target: Message, value: Any) -> None:
    name = target.DESCRIPTOR.full_name
    if name == _TIMESTAMP:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        target.FromDatetime(value)
    elif name == _STRUCT:
        target.update(to_jsonable(value))
    elif name == _STRING_LIST:
        target.values.extend(str(v) for v in value)
    else:
        fill(target, value)


def fill(message: Message, data: dict) -> Message:
    """Set ``message``'s fields from ``data`` (keys that are not fields are ignored)."""
    for field in message.DESCRIPTOR.fields:
        if field.name not in data or data[field.name] is None:
            continue
        value = data[field.name]
        if _is_map(field):
            container = getattr(message, field.name)
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if item is None:
                    continue
                if value_field.message_type is not None:
                    _fill_message(container[str(key)], item)
                else:
                    container[str(key)] = _scalar(value_field, item)
        elif field.is_repeated:
            container = getattr(message, field.name)
            for item in value:
                if field.message_type is not None:
                    _fill_message(container.add(), item)
                else:
                    container.append(_scalar(field, item))
        elif field.message_type is not None:
            _fill_message(getattr(message, field.name), value)
        else:
            setattr(message, field.name, _scalar(field, value))
    return message


def to_message(cls: type[Message], data: dict | None) -> Message | None:
    return None if data is None else fill(cls(), data)


# ---------------------------------------------------------------- requests in


def _read_message(value: Message, *, json_times: bool) -> Any:
    name = value.DESCRIPTOR.full_name
    if name == _TIMESTAMP:
        moment = value.ToDatetime(tzinfo=dt.timezone.utc)
        return moment.isoformat() if json_times else moment
    if name == _STRUCT:
        return struct_to_dict(value)
    if name == _STRING_LIST:
        return list(value.values)
    return request_fields(value) if json_times else to_dict(value)


def request_fields(message: Message) -> dict[str, Any]:
    """The fields the caller set, in the REST JSON's form (times as ISO strings)."""
    data: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if _is_map(field):
            if value:
                data[field.name] = {
                    k: (_read_message(v, json_times=True) if isinstance(v, Message) else v) for k, v in value.items()
                }
        elif field.is_repeated:
            if value:
                if field.enum_type is not None:
                    data[field.name] = [enum_text(field.enum_type, v) for v in value]
                elif field.message_type is not None:
                    data[field.name] = [_read_message(v, json_times=True) for v in value]
                else:
                    data[field.name] = list(value)
        elif field.message_type is not None:
            if message.HasField(field.name):
                data[field.name] = _read_message(value, json_times=True)
        elif field.enum_type is not None:
            if value != 0:
                data[field.name] = enum_text(field.enum_type, value)
            elif field.has_presence and message.HasField(field.name):
                data[field.name] = None  # UNSPECIFIED given on purpose: the schema refuses it
        elif field.has_presence:
            if message.HasField(field.name):
                data[field.name] = value
        elif value != field.default_value:
            data[field.name] = value
    return data


# ---------------------------------------------------------------- any message out (tests, clients)


def to_dict(message: Message) -> dict[str, Any]:
    """Every field in the REST JSON's form: unset ones are None, times aware datetimes."""
    data: dict[str, Any] = {}
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        value = getattr(message, field.name)
        if _is_map(field):
            data[field.name] = {
                k: (_read_message(v, json_times=False) if isinstance(v, Message) else v) for k, v in value.items()
            }
        elif field.is_repeated:
            if field.enum_type is not None:
                data[field.name] = [enum_text(field.enum_type, v) for v in value]
            elif field.message_type is not None:
                data[field.name] = [_read_message(v, json_times=False) for v in value]
            else:
                data[field.name] = list(value)
        elif field.message_type is not None:
            data[field.name] = _read_message(value, json_times=False) if message.HasField(field.name) else None
        elif field.enum_type is not None:
            data[field.name] = enum_text(field.enum_type, value)
        elif field.has_presence and not message.HasField(field.name):
            data[field.name] = None
        else:
            data[field.name] = value
    for oneof in descriptor.oneofs:
        if not oneof.name.startswith("_"):  # real oneofs, not proto3 `optional`
            data[oneof.name] = message.WhichOneof(oneof.name)
    return data

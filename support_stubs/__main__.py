"""``python -m support_stubs``: regenerate the gRPC stubs from ``protos/``."""
from __future__ import annotations

from support_stubs import GEN_DIR, generate

if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(GEN_DIR.parent))

"""Write the gateway's OpenAPI document to docs/gateway-openapi.json (or check it).

python scripts/gateway_openapi.py          # rewrite the file
python scripts/gateway_openapi.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ragguard.gateway._app import openapi_schema

TARGET = Path(__file__).resolve().parents[1] / "docs" / "gateway-openapi.json"


def main() -> int:
    text = json.dumps(openapi_schema(), indent=2, sort_keys=False) + "\n"
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python scripts/gateway_openapi.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

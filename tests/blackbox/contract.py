"""Routes files and matching API specs for gateways started by tests.

The gateway refuses to start when its routes and api-specs/ drift apart, so a
test that serves its own routes also writes their operations. Each route is
(route, operation): the route as in config/routes.yaml, and extra OpenAPI
operation fields (parameters, requestBody); path parameters are declared
as strings unless the operation says otherwise.
"""
from __future__ import annotations

import json, os, re, shutil, tempfile


class Contract:
    def __init__(self, routes: list, defaults: dict | None = None, components: dict | None = None):
        self.dir = tempfile.mkdtemp(prefix="moonport-contract-")
        self.specs_dir = os.path.join(self.dir, "specs")
        os.makedirs(self.specs_dir)
        self.routes_file = os.path.join(self.dir, "routes.yaml")
        with open(self.routes_file, "w") as f:
            if defaults:
                f.write("defaults: " + json.dumps(defaults) + "\n")
            f.write("routes:\n")
            for route, _ in routes:
                f.write("  - " + json.dumps(route) + "\n")
        paths: dict = {}
        for route, extra in routes:
            op = {"operationId": route["subject"], "responses": {"200": {"description": "ok"}}, **(extra or {})}
            declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
            for name in re.findall(r"{(\w+)}", route["path"]):
                if name not in declared:
                    op.setdefault("parameters", []).append(
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
            if route["method"] in ("POST", "PUT", "PATCH") and "requestBody" not in op \
                    and route.get("body") != "raw":
                op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
            paths.setdefault(route["path"], {})[route["method"].lower()] = op
        spec = {"openapi": "3.0.3", "info": {"title": "test", "version": "0"}, "paths": paths}
        if components:
            spec["components"] = components
        with open(os.path.join(self.specs_dir, "test.yaml"), "w") as f:
            json.dump(spec, f, indent=1)  # JSON is YAML

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

"""api-specs/ against config/routes.yaml: every route the gateway serves is
described in an OpenAPI 3 document there, with the same method, path and
NATS subject, and every described operation is served; path parameters
agree; request bodies refuse unknown fields. No server needed (PyYAML:
Debian's python3-yaml)."""
from __future__ import annotations

import glob, os, re, unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
METHODS = ("get", "put", "post", "patch", "delete")


def load_routes() -> dict:
    with open(os.path.join(ROOT, "config", "routes.yaml")) as f:
        routes = yaml.safe_load(f)["routes"]
    return {(r["method"].upper(), r["path"]): r for r in routes}


def load_specs() -> dict:
    """(METHOD, path) -> (file, path item, operation) for every operation in api-specs/*.yaml."""
    ops = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "api-specs", "*.yaml"))):
        with open(path) as f:
            doc = yaml.safe_load(f)
        assert str(doc.get("openapi", "")).startswith("3."), f"{path}: not an OpenAPI 3 document"
        for p, item in doc.get("paths", {}).items():
            for m in METHODS:
                if m in item:
                    key = (m.upper(), p)
                    assert key not in ops, f"{key} described twice ({ops[key][0]} and {path})"
                    ops[key] = (os.path.basename(path), item, item[m], doc)
    return ops


class ApiSpecsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.routes = load_routes()
        cls.ops = load_specs()

    def ref(self, doc: dict, node):
        """Follows local $refs ("#/components/...") to the node they name."""
        while isinstance(node, dict) and "$ref" in node:
            target = doc
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def test_every_served_route_is_described_and_every_description_served(self):
        served, described = set(self.routes), set(self.ops)
        self.assertEqual(sorted(served - described), [], "routes without an OpenAPI description in api-specs/")
        self.assertEqual(sorted(described - served), [], "described operations that config/routes.yaml does not serve")

    def test_the_user_and_product_routes_are_there(self):
        for key in [("GET", "/v1/users/me"), ("GET", "/v1/users/{userId}"), ("PATCH", "/v1/users/{userId}"),
                    ("PUT", "/v1/users/{userId}/avatar"), ("GET", "/v1/users/{userId}/avatar"), ("GET", "/v1/users"),
                    ("GET", "/v1/products"), ("GET", "/v1/products/{id}"), ("POST", "/v1/products"),
                    ("PATCH", "/v1/products/{id}"), ("DELETE", "/v1/products/{id}")]:
            self.assertIn(key, self.routes)
            self.assertIn(key, self.ops)

    def test_subjects_and_operation_ids_match_the_routes(self):
        ids = []
        for key, route in self.routes.items():
            _, _, op, _ = self.ops[key]
            self.assertEqual(op.get("x-subject"), route["subject"], key)
            self.assertTrue(op["operationId"] == route["subject"] or op["operationId"].startswith(route["subject"]),
                            (key, op["operationId"]))
            ids.append(op["operationId"])
        self.assertEqual(len(ids), len(set(ids)), "operationIds must be unique")

    def test_path_parameters_agree_and_are_typed(self):
        for (method, path), (name, item, op, doc) in self.ops.items():
            in_path = set(re.findall(r"{([^}]+)}", path))
            params = [self.ref(doc, p) for p in item.get("parameters", []) + op.get("parameters", [])]
            declared = {p["name"] for p in params if p["in"] == "path"}
            self.assertEqual(in_path, declared, f"{name} {method} {path}")
            for p in params:
                self.assertIn("type", self.ref(doc, p["schema"]), f"{name} {method} {path} parameter {p['name']}")
                if p["in"] == "path":
                    self.assertTrue(p["required"])

    def test_json_request_bodies_refuse_unknown_fields(self):
        for (method, path), (name, item, op, doc) in self.ops.items():
            body = op.get("requestBody")
            if not body:
                continue
            body = self.ref(doc, body)
            for ctype, media in body["content"].items():
                if ctype != "application/json":
                    continue
                schema = self.ref(doc, media["schema"])
                self.assertEqual(schema.get("type"), "object", f"{name} {method} {path}")
                self.assertIs(schema.get("additionalProperties"), False, f"{name} {method} {path}")
                self.assertTrue(schema.get("properties"), f"{name} {method} {path}")

    def test_raw_routes_describe_their_media_types(self):
        for key, route in self.routes.items():
            if route.get("body") == "raw":
                _, _, op, _ = self.ops[key]
                types = set(op["requestBody"]["content"])
                self.assertNotIn("application/json", types, key)
                self.assertTrue(types, key)


if __name__ == "__main__":
    unittest.main()

"""Request validation from api-specs/, black-box: the gateway checks every
request against its operation before any service sees it (422 for a body
that breaks a rule, with the exact JSON pointer of each failing field; 400
for malformed JSON and bad path or query parameters), hands services typed
parameters, and refuses to start when routes and specs drift apart."""
from __future__ import annotations

import json, os, re, time, unittest, uuid

import context
from contract import Contract
from helpers import client, new_user, wait_for
from httpc import Client
from natsc import Responder

ORDER_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["items"],
    "properties": {
        "items": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Line"}},
        "note": {"type": "string", "maxLength": 10},
    },
}
LINE = {"type": "object", "additionalProperties": False, "required": ["product_id", "quantity"],
        "properties": {"product_id": {"type": "string", "format": "uuid"},
                       "quantity": {"type": "integer", "minimum": 1, "maximum": 99}}}

ROUTES = [
    ({"method": "POST", "path": "/v1/zz/orders", "subject": "product.v1.zz_order", "auth": "none"},
     {"requestBody": {"required": True, "content": {"application/json": {"schema": ORDER_SCHEMA}}}}),
    ({"method": "GET", "path": "/v1/zz/items/{itemId}", "subject": "product.v1.zz_items", "auth": "none"},
     {"parameters": [
         {"name": "itemId", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
         {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
         {"name": "fresh", "in": "query", "schema": {"type": "boolean"}},
         {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}},
     ]}),
]


class ValidationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.contract = Contract(ROUTES, components={"schemas": {"Line": LINE}})
        cls.mp = context.new_moonport(roles="gateway", routes_file=cls.contract.routes_file,
                                      specs_dir=cls.contract.specs_dir).start()
        st = context.STACK
        # echo services: they answer with what they received, so a test sees what got through
        cls.orders = Responder(st.nats_port, "test", st.nats_password("test"), "product.v1.zz_order", body=None).start()
        cls.items = Responder(st.nats_port, "test", st.nats_password("test"), "product.v1.zz_items", body=None).start()
        cls.c = Client(cls.mp.url)

    @classmethod
    def tearDownClass(cls):
        cls.orders.stop()
        cls.items.stop()
        cls.mp.stop()
        cls.contract.close()

    def test_body_errors_name_the_exact_pointers_and_the_service_sees_nothing(self):
        before = self.orders.served
        r = self.c.post("/v1/zz/orders", {"items": [{"product_id": str(uuid.uuid4()), "quantity": 1},
                                                    {"product_id": "x", "quantity": 0, "colour": "red"}],
                                          "note": "far too long a note", "coupon": "FREE"})
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.header("content-type"), "application/problem+json")
        self.assertEqual([(e["pointer"], e["detail"]) for e in r.json["errors"]], [
            ("/items/1/product_id", "must be an id (a UUID)"),
            ("/items/1/quantity", "must be at least 1"),
            ("/items/1/colour", "is not a known field"),
            ("/note", "must be at most 10 characters long"),
            ("/coupon", "is not a known field"),
        ])
        self.assertEqual(self.orders.served, before)
        r = self.c.post("/v1/zz/orders", {})
        self.assertEqual(r.status, 422)
        self.assertEqual([e["pointer"] for e in r.json["errors"]], ["/items"])
        self.assertEqual(self.mp.metric("moonport_gateway_rejected_total", route="/v1/zz/orders", reason="invalid"), 2)

    def test_a_valid_body_reaches_the_service_unchanged(self):
        body = {"items": [{"product_id": str(uuid.uuid4()), "quantity": 3}], "note": "ok"}
        r = self.c.post("/v1/zz/orders", body)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json, body)

    def test_malformed_json_is_400(self):
        r = self.c.post("/v1/zz/orders", raw=b'{"items": [', headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertIn("malformed JSON", r.json["detail"])

    def test_parameters_are_typed_for_the_service(self):
        item = str(uuid.uuid4())
        r = self.c.get(f"/v1/zz/items/{item}?limit=20&fresh=true&tag=a&tag=b")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json, {"itemId": item, "limit": 20, "fresh": True, "tag": ["a", "b"]})

    def test_bad_parameters_are_400_with_pointers(self):
        before = self.items.served
        cases = [
            ("/v1/zz/items/not-a-uuid", [("/itemId", "must be an id (a UUID)")]),
            (f"/v1/zz/items/{uuid.uuid4()}?limit=0", [("/limit", "must be at least 1")]),
            (f"/v1/zz/items/{uuid.uuid4()}?limit=abc", [("/limit", "must be an integer")]),
            (f"/v1/zz/items/{uuid.uuid4()}?fresh=maybe", [("/fresh", "must be true or false")]),
            (f"/v1/zz/items/{uuid.uuid4()}?tag=c", [("/tag/0", 'must be one of "a", "b"')]),
            (f"/v1/zz/items/{uuid.uuid4()}?sort=name", [("/sort", "is not a known query parameter")]),
        ]
        for path, errors in cases:
            r = self.c.get(path)
            self.assertEqual(r.status, 400, path)
            self.assertEqual([(e["pointer"], e["detail"]) for e in r.json["errors"]], errors, path)
        self.assertEqual(self.items.served, before)


class AuthRoutesValidationTest(unittest.TestCase):
    """The shipped api-specs/auth.yaml in front of the real Auth service."""

    def test_register_is_checked_at_the_gateway(self):
        c = client()
        before = context.MOONPORT.metric("moonport_nats_requests_total", subject="auth.v1.register", status="422") or 0
        r = c.post("/v1/auth/register", {"email": "x@example.com", "password": "short", "display_name": "",
                                         "admin": True})
        self.assertEqual(r.status, 422)
        self.assertEqual(sorted(e["pointer"] for e in r.json["errors"]), ["/admin", "/display_name", "/password"])
        after = context.MOONPORT.metric("moonport_nats_requests_total", subject="auth.v1.register", status="422") or 0
        self.assertEqual(after, before)  # Auth never saw it

    def test_session_id_must_be_a_uuid(self):
        c = client()
        _, t = new_user(c)
        r = c.delete("/v1/auth/sessions/not-a-uuid", token=t["access_token"])
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["errors"], [{"pointer": "/id", "detail": "must be an id (a UUID)"}])
        r = c.get("/v1/auth/sessions?limit=5", token=t["access_token"])
        self.assertEqual(r.status, 400)  # sessions takes no parameters


class RequiredBodyTest(unittest.TestCase):
    """requestBody.required: true with a schema that names no required field: no body is not the empty object."""

    def test_a_required_body_may_not_be_left_out(self):
        from httpc import request
        contract = Contract([({"method": "POST", "path": "/v1/zz/notes", "subject": "product.v1.zz_note",
                               "auth": "none"},
                              {"requestBody": {"required": True,
                                               "content": {"application/json": {"schema": {"type": "object"}}}}})])
        st = context.STACK
        notes = Responder(st.nats_port, "test", st.nats_password("test"), "product.v1.zz_note", body=None).start()
        mp = context.new_moonport(roles="gateway", routes_file=contract.routes_file,
                                  specs_dir=contract.specs_dir).start()
        try:
            r = request(mp.url, "POST", "/v1/zz/notes", None, headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 422, r.body)
            self.assertEqual([(e["pointer"], e["detail"]) for e in r.json["errors"]],
                             [("", "a request body is required")])
            self.assertEqual(notes.served, 0)
            self.assertEqual(Client(mp.url).post("/v1/zz/notes", {}).status, 200)  # an empty object is a body
            wait_for(lambda: notes.served == 1, 5, "the empty object reached the service")  # counted after replying
        finally:
            mp.stop()
            notes.stop()
            contract.close()


class ContractDriftTest(unittest.TestCase):
    def test_a_route_without_operation_and_an_operation_without_route_stop_start_up(self):
        contract = Contract(ROUTES, components={"schemas": {"Line": LINE}})
        try:
            with open(contract.routes_file, "a") as f:  # a route the specs do not describe
                f.write('  - {"method": "GET", "path": "/v1/zz/extra", "subject": "product.v1.zz_extra"}\n')
            spec = os.path.join(contract.specs_dir, "test.yaml")
            with open(spec) as f:  # and an operation no route serves
                doc = json.load(f)
            doc["paths"]["/v1/zz/orphan"] = {"get": {"operationId": "product.v1.zz_orphan", "responses": {}}}
            with open(spec, "w") as f:
                json.dump(doc, f, indent=1)
            mp = context.new_moonport(roles="gateway", routes_file=contract.routes_file,
                                      specs_dir=contract.specs_dir)
            mp.start(wait_ready=False)
            rc = mp.proc.wait(20)
            mp.stop()
            with open(mp.log_path) as f:
                log = f.read()
            self.assertEqual(rc, 2, log[-2000:])
            self.assertRegex(log, re.escape(contract.routes_file) +
                             r":4: route GET /v1/zz/extra \(product.v1.zz_extra\) has no operation")
            self.assertRegex(log, re.escape(spec) + r":\d+: operation product.v1.zz_orphan \(GET /v1/zz/orphan\) "
                                                    r"has no route")
        finally:
            contract.close()


if __name__ == "__main__":
    unittest.main()

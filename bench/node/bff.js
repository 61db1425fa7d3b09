// The peer: the same BFF compositions written the way a team would without
// moonport — a Node.js BFF with fastify and the `nats` client, one process,
// calling the same subjects over the same NATS. Used only by `make bench`.
"use strict";
const fastify = require("fastify")({ logger: false });
const { connect, JSONCodec } = require("nats");

const jc = JSONCodec();
const NATS_URL = process.env.NATS_URL || "nats://127.0.0.1:4222";
const PORT = Number(process.env.PORT || 8090);

async function main() {
  const nc = await connect({ servers: NATS_URL, name: "node-bff" });

  async function call(subject, input, fallback) {
    try {
      const msg = await nc.request(subject, jc.encode(input), { timeout: 2000 });
      return jc.decode(msg.data);
    } catch (err) {
      if (fallback !== undefined) return fallback;
      throw err;
    }
  }

  fastify.get("/bff/bench/home", async () => {
    const [profile, featured, orders, unread] = await Promise.all([
      call("echo.v1.profile", { id: "u1" }),
      call("echo.v1.featured", { tag: "featured", limit: 8 }, { items: [] }),
      call("echo.v1.orders", { user_id: "u1", limit: 5 }, { items: [] }),
      call("echo.v1.unread", { unread: true }, { items: [] }),
    ]);
    return {
      user: profile.items[0],
      featured: featured.items,
      recent_orders: orders.items,
      unread_notifications: unread.items.length,
    };
  });

  fastify.get("/bff/bench/one", async () => {
    const p = await call("echo.v1.product", { id: "p1" });
    return { product: p.items[0], count: p.items.length };
  });

  await fastify.listen({ port: PORT, host: "127.0.0.1" });
  console.log(`node-bff ready on ${PORT}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

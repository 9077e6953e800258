import { randomUUID } from "node:crypto";
import pg from "pg";
import { expect, it } from "vitest";
import { brokerEndpoint, describeWithBroker } from "../src/available.ts";

describeWithBroker("postgres", "postgres smoke (pg on 5433)", () => {
  it("writes one row and reads it back", async () => {
    const client = new pg.Client({ connectionString: brokerEndpoint("postgres").url });
    await client.connect();
    const table = `smoke_${randomUUID().replaceAll("-", "")}`;
    try {
      const v = await client.query<{ server_version: string }>("SHOW server_version");
      expect(v.rows[0]!.server_version).toMatch(/^15\./);
      await client.query(`CREATE TABLE ${table} (id uuid primary key, body jsonb not null)`);
      const row = { id: randomUUID(), body: { text: "hello postgres" } };
      await client.query(`INSERT INTO ${table} (id, body) VALUES ($1, $2)`, [row.id, row.body]);
      const r = await client.query(`SELECT id, body FROM ${table} WHERE id = $1`, [row.id]);
      expect(r.rows).toEqual([row]);
    } finally {
      await client.query(`DROP TABLE IF EXISTS ${table}`);
      await client.end();
    }
  });
});

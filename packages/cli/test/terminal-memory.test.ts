// A real terminal (tmux) on the in-memory broker. The memory broker lives in one process, so the
// fixture feeds it and runs the CLI's command line in that same process (see the fixture).
import { afterAll, describe, expect, it } from "vitest";
import { BIN, closeTerminals, FIXTURES, Terminal, unique } from "./helpers.js";

const FIXTURE = `${FIXTURES}memory-terminal.mjs`;
const ESC = String.fromCharCode(27);
afterAll(closeTerminals);

describe.concurrent("in a terminal, on memory://", () => {
  it("dlq redrive draws a progress bar with counts and rate, then a summary", async () => {
    const terminal = Terminal.start([FIXTURE, "redrive", unique("mem"), "400"]);
    try {
      const screen = await terminal.waitFor("[exit ");
      expect(screen).toMatch(/redrive \[█+\] 400\/400 \| [\d.]+ msg\/s \| /);
      expect(screen).toMatch(
        /redrove 400 dead letter\(s\) from orders\.billing\.dlq in [\d.]+ s \([\d.]+ msg\/s\)/,
      );
      expect(screen).toContain("[exit 0]");
    } finally {
      terminal.kill();
    }
  });

  it("tail prints envelopes as they arrive and stops on Ctrl-C with exit 0", async () => {
    const terminal = Terminal.start([FIXTURE, "tail", unique("mem")]);
    try {
      await terminal.waitFor("order.paid");
      const screen = terminal.screen();
      expect(screen).toMatch(/tailing topic orders as subscription tail-[0-9a-f]{8} on memory:\/\//);
      expect(screen).toMatch(/order\.placed {2}v1 {2}key=o-1 {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}from fixture/);
      expect(screen).toMatch(/data {5}\{\n {13}"n": 1\n {11}\}/);
      expect(screen.indexOf("order.placed")).toBeLessThan(screen.indexOf("order.paid"));
      terminal.keys("C-c");
      const after = await terminal.waitFor("[exit ");
      expect(after).toContain("2 message(s) shown");
      expect(after).toContain("[exit 0]");
    } finally {
      terminal.kill();
    }
  });

  it("colours on a terminal, none with NO_COLOR or --json", async () => {
    const publish = ["publish", "t", "--type", "x", "--data", "{}"];
    const coloured = Terminal.start([BIN, ...publish]);
    const plain = Terminal.start([BIN, ...publish], { NO_COLOR: "1" });
    const json = Terminal.start([BIN, ...publish, "--json"]);
    try {
      for (const terminal of [coloured, plain, json]) await terminal.waitFor("[exit 0]");
      expect(coloured.screen(true)).toContain(`published ${ESC}[1mx${ESC}[`); // the type in bold
      expect(plain.screen(true)).toContain("published x v1");
      expect(plain.screen(true)).not.toContain(ESC);
      expect(json.screen(true)).toContain('"type":"x"');
      expect(json.screen(true)).not.toContain(ESC);
    } finally {
      for (const terminal of [coloured, plain, json]) terminal.kill();
    }
  });
});

import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";

/** The built `switchyard` binary (pnpm build makes it). */
export const BIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
export const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
export const BLOG_DEFINITIONS = fileURLToPath(
  new URL("../../../examples/blog-approval/dist/switchyard.js", import.meta.url),
);

export const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the binary as a script would: pipes, no terminal, no SWITCHYARD_URL from the caller's shell. */
export function runBin(
  args: string[],
  options: { input?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  if (!options.env?.SWITCHYARD_URL) delete env.SWITCHYARD_URL;
  const child = spawn(process.execPath, [BIN, ...args], {
    env,
    cwd: options.cwd ?? process.cwd(),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  child.stdin.end(options.input ?? "");
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Lines of JSON from stdout. */
export const jsonLines = (stdout: string) =>
  stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, any>);

// ---- a real terminal: tmux on a socket of this test run, so no one else's sessions are touched ----

const SOCKET = `switchyard-cli-test-${process.pid}`;
const tmux = (...args: string[]) =>
  execFileSync("tmux", ["-L", SOCKET, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

export class Terminal {
  private constructor(readonly name: string) {}

  /**
   * Starts `command` (argv, run by node) in a 160×40 terminal. When it ends, the pane prints
   * `[exit N]` and stays, so the last screen can still be read.
   */
  static start(args: string[], env: Record<string, string> = {}): Terminal {
    const name = unique("cli");
    const quoted = [process.execPath, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
    const envArgs = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    tmux(
      "new-session",
      "-d",
      "-x",
      "160",
      "-y",
      "40",
      "-s",
      name,
      ...envArgs,
      `${quoted}; echo "[exit $?]"; sleep 600`,
    );
    return new Terminal(name);
  }

  /** The screen as text (`escapes`: with colour escape sequences). */
  screen(escapes = false): string {
    return tmux("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", this.name);
  }

  /** Waits until the screen shows `text` (polling the pane: tmux has no change event). */
  async waitFor(text: string | RegExp, timeout = 30_000): Promise<string> {
    const wanted = typeof text === "string" ? new RegExp(escapeRegExp(text)) : text;
    const deadline = Date.now() + timeout;
    for (;;) {
      const screen = this.screen();
      if (wanted.test(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`the terminal never showed ${wanted}; it shows:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  keys(...keys: string[]): void {
    tmux("send-keys", "-t", this.name, ...keys);
  }

  kill(): void {
    try {
      tmux("kill-session", "-t", this.name);
    } catch {
      // gone already
    }
  }
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Ends this test run's tmux server (its own socket: nobody else's sessions). */
export function closeTerminals(): void {
  try {
    tmux("kill-server");
  } catch {
    // no server was started
  }
}

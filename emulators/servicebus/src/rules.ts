import rhea from "rhea";
import { EmulatorError } from "./store.js";

const { types } = rhea as unknown as { types: any };

/** Matches on the message's own fields and application properties; every field given must be equal. */
export interface CorrelationFilter {
  correlationId?: string;
  messageId?: string;
  to?: string;
  replyTo?: string;
  subject?: string;
  sessionId?: string;
  replyToSessionId?: string;
  contentType?: string;
  applicationProperties?: Record<string, string | number | boolean>;
}

/** A subscription rule's filter: a SQL filter expression (a SQL-92 subset) or a correlation filter. */
export type RuleFilter = { sql: string } | { correlation: CorrelationFilter };

export interface RuleConfig {
  name: string;
  filter: RuleFilter;
}

export interface Rule extends RuleConfig {
  /** True when the message passes the filter (SQL's unknown, e.g. a missing property, is false). */
  matches(message: Record<string, any>): boolean;
}

/** The rule every subscription starts with, as on the service. */
export const DEFAULT_RULE: RuleConfig = { name: "$Default", filter: { sql: "1=1" } };

export function compileRule(config: RuleConfig): Rule {
  if (!config || typeof config.name !== "string" || config.name === "")
    throw new EmulatorError("amqp:invalid-field", "a rule needs a name", 400);
  const filter = config.filter;
  if (filter && "sql" in filter && typeof filter.sql === "string") {
    const expression = parseSql(filter.sql);
    return { ...config, matches: (message) => expression(message) === true };
  }
  if (filter && "correlation" in filter && filter.correlation && typeof filter.correlation === "object") {
    const c = filter.correlation;
    return { ...config, matches: (message) => matchCorrelation(c, message) };
  }
  throw new EmulatorError(
    "amqp:invalid-field",
    `rule '${config.name}' needs a filter { sql } or { correlation }`,
    400,
  );
}

// ---- message fields ----

/** `sys.` names of SQL filters → AMQP properties of the message. */
const SYSTEM: Record<string, string> = {
  messageid: "message_id",
  correlationid: "correlation_id",
  to: "to",
  replyto: "reply_to",
  label: "subject",
  subject: "subject",
  sessionid: "group_id",
  replytosessionid: "reply_to_group_id",
  contenttype: "content_type",
};

function plain(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === "object" && value !== null && "value" in value && "typecode" in value)
    return plain((value as { value: unknown }).value);
  if (Buffer.isBuffer(value)) return value.toString("hex");
  if (value instanceof Date) return value.getTime();
  if (typeof value === "bigint") return Number(value);
  return value;
}

function systemValue(message: Record<string, any>, name: string): unknown {
  const field = SYSTEM[name.toLowerCase()];
  if (!field) throw new EmulatorError("amqp:invalid-field", `unknown system property 'sys.${name}'`, 400);
  return plain(message[field]);
}

function userValue(message: Record<string, any>, name: string): unknown {
  const props: Record<string, unknown> = message.application_properties ?? {};
  if (Object.hasOwn(props, name)) return plain(props[name]);
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(props)) if (key.toLowerCase() === lower) return plain(value);
  return null;
}

function matchCorrelation(filter: CorrelationFilter, message: Record<string, any>): boolean {
  const fields: Array<[unknown, string]> = [
    [filter.correlationId, "correlationid"],
    [filter.messageId, "messageid"],
    [filter.to, "to"],
    [filter.replyTo, "replyto"],
    [filter.subject, "label"],
    [filter.sessionId, "sessionid"],
    [filter.replyToSessionId, "replytosessionid"],
    [filter.contentType, "contenttype"],
  ];
  for (const [wanted, name] of fields) {
    if (wanted === undefined || wanted === null) continue;
    if (String(systemValue(message, name)) !== String(wanted)) return false;
  }
  for (const [name, wanted] of Object.entries(filter.applicationProperties ?? {})) {
    if (userValue(message, name) !== plain(wanted)) return false;
  }
  return true;
}

// ---- SQL filter expressions ----

type Value = unknown; // string | number | boolean | null (null: SQL unknown)
type Expression = (message: Record<string, any>) => Value;
type Token = { kind: "num" | "str" | "id" | "op" | "end"; text: string; value?: unknown };

function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new EmulatorError("amqp:invalid-field", `SQL filter '${sql}': ${what} at ${i}`, 400);
  };
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      let text = "";
      i++;
      for (;;) {
        if (i >= sql.length) fail("unterminated string");
        if (sql[i] === "'") {
          if (sql[i + 1] === "'") {
            text += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += sql[i++];
      }
      tokens.push({ kind: "str", text, value: text });
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(sql[i + 1] ?? ""))) {
      const match = /^[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?/i.exec(sql.slice(i))!;
      tokens.push({ kind: "num", text: match[0], value: Number(match[0]) });
      i += match[0].length;
    } else if (c === "[") {
      const end = sql.indexOf("]", i);
      if (end < 0) fail("unterminated [name]");
      tokens.push({ kind: "id", text: sql.slice(i + 1, end) });
      i = end + 1;
    } else if (/[A-Za-z_@$]/.test(c)) {
      const match = /^[A-Za-z_@$][\w@$]*(\.(\[[^\]]*\]|[A-Za-z_@$][\w@$]*))?/.exec(sql.slice(i))!;
      tokens.push({ kind: "id", text: match[0] });
      i += match[0].length;
    } else {
      const op = ["<>", "!=", "<=", ">="].find((o) => sql.startsWith(o, i)) ?? c;
      if (!["<>", "!=", "<=", ">=", "=", "<", ">", "(", ")", ",", "+", "-", "*", "/", "%"].includes(op))
        fail(`unexpected '${c}'`);
      tokens.push({ kind: "op", text: op });
      i += op.length;
    }
  }
  tokens.push({ kind: "end", text: "" });
  return tokens;
}

/** Parses a SQL filter expression into a function of the message (three-valued: null is unknown). */
export function parseSql(sql: string): Expression {
  const tokens = tokenize(sql);
  let at = 0;
  const peek = () => tokens[at]!;
  const keyword = (word: string) => peek().kind === "id" && peek().text.toUpperCase() === word;
  const accept = (word: string) => {
    if (keyword(word) || (peek().kind === "op" && peek().text === word)) {
      at++;
      return true;
    }
    return false;
  };
  const fail = (what: string): never => {
    throw new EmulatorError(
      "amqp:invalid-field",
      `SQL filter '${sql}': ${what} near '${peek().text || "end"}'`,
      400,
    );
  };
  const expect = (word: string) => {
    if (!accept(word)) fail(`expected ${word}`);
  };

  const or = (): Expression => {
    let left = and();
    while (accept("OR")) {
      const a = left;
      const b = and();
      left = (m) => {
        const x = a(m);
        if (x === true) return true;
        const y = b(m);
        if (y === true) return true;
        return x === null || y === null ? null : false;
      };
    }
    return left;
  };
  const and = (): Expression => {
    let left = not();
    while (accept("AND")) {
      const a = left;
      const b = not();
      left = (m) => {
        const x = a(m);
        if (x === false) return false;
        const y = b(m);
        if (y === false) return false;
        return x === null || y === null ? null : true;
      };
    }
    return left;
  };
  const not = (): Expression => {
    if (accept("NOT")) {
      const inner = not();
      return (m) => {
        const x = inner(m);
        return x === null ? null : !truthy(x);
      };
    }
    return predicate();
  };
  const predicate = (): Expression => {
    if (accept("EXISTS")) {
      expect("(");
      const name = peek();
      if (name.kind !== "id") fail("expected a property name");
      at++;
      expect(")");
      const read = property(name.text);
      return (m) => read(m) !== null;
    }
    const left = additive();
    if (accept("IS")) {
      const negate = accept("NOT");
      expect("NULL");
      return (m) => (left(m) === null) !== negate;
    }
    const negate = accept("NOT");
    if (accept("IN")) {
      expect("(");
      const items: Expression[] = [additive()];
      while (accept(",")) items.push(additive());
      expect(")");
      return (m) => {
        const x = left(m);
        if (x === null) return null;
        const found = items.some((item) => equal(x, item(m)) === true);
        return found !== negate;
      };
    }
    if (accept("LIKE")) {
      const pattern = peek();
      if (pattern.kind !== "str") fail("LIKE needs a string pattern");
      at++;
      let escapeChar: string | undefined;
      if (accept("ESCAPE")) {
        const e = peek();
        if (e.kind !== "str" || e.text.length !== 1) fail("ESCAPE needs one character");
        escapeChar = e.text;
        at++;
      }
      const regex = likeRegex(pattern.text, escapeChar);
      return (m) => {
        const x = left(m);
        if (x === null) return null;
        return regex.test(String(x)) !== negate;
      };
    }
    if (negate) fail("expected IN or LIKE after NOT");
    const op = peek();
    if (op.kind === "op" && ["=", "<>", "!=", "<", ">", "<=", ">="].includes(op.text)) {
      at++;
      const right = additive();
      return (m) => compare(op.text, left(m), right(m));
    }
    return left;
  };
  const additive = (): Expression => {
    let left = multiplicative();
    for (;;) {
      const op = peek();
      if (op.kind !== "op" || (op.text !== "+" && op.text !== "-")) return left;
      at++;
      const a = left;
      const b = multiplicative();
      left = (m) => arithmetic(op.text, a(m), b(m));
    }
  };
  const multiplicative = (): Expression => {
    let left = unary();
    for (;;) {
      const op = peek();
      if (op.kind !== "op" || !["*", "/", "%"].includes(op.text)) return left;
      at++;
      const a = left;
      const b = unary();
      left = (m) => arithmetic(op.text, a(m), b(m));
    }
  };
  const unary = (): Expression => {
    if (accept("-")) {
      const inner = unary();
      return (m) => {
        const x = inner(m);
        return typeof x === "number" ? -x : null;
      };
    }
    if (accept("+")) return unary();
    return primary();
  };
  const primary = (): Expression => {
    const token = peek();
    if (accept("(")) {
      const inner = or();
      expect(")");
      return inner;
    }
    if (token.kind === "num" || token.kind === "str") {
      at++;
      return () => token.value;
    }
    if (token.kind === "id") {
      const word = token.text.toUpperCase();
      if (word === "TRUE" || word === "FALSE" || word === "NULL") {
        at++;
        return () => (word === "NULL" ? null : word === "TRUE");
      }
      if (["AND", "OR", "NOT", "IN", "LIKE", "IS", "ESCAPE", "EXISTS"].includes(word))
        fail("unexpected keyword");
      at++;
      return property(token.text);
    }
    return fail("expected a value");
  };

  const expression = or();
  if (peek().kind !== "end") fail("unexpected input");
  return expression;
}

function property(name: string): Expression {
  const unbracket = (s: string) => (s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s);
  const dot = name.indexOf(".");
  const scope = dot > 0 ? name.slice(0, dot).toLowerCase() : "";
  if (scope === "sys") {
    const field = unbracket(name.slice(dot + 1));
    systemValue({}, field); // unknown names fail at parse time
    return (m) => systemValue(m, field);
  }
  const field = scope === "user" ? unbracket(name.slice(dot + 1)) : name;
  return (m) => userValue(m, field);
}

function truthy(value: Value): boolean {
  return value === true;
}

function equal(a: Value, b: Value): boolean | null {
  if (a === null || b === null) return null;
  if (typeof a === "number" && typeof b === "number") return a === b;
  if (typeof a !== typeof b) return false;
  return a === b;
}

function compare(op: string, a: Value, b: Value): boolean | null {
  if (op === "=") return equal(a, b);
  if (op === "<>" || op === "!=") {
    const e = equal(a, b);
    return e === null ? null : !e;
  }
  if (a === null || b === null || typeof a !== typeof b) return null;
  const x = a as number | string;
  const y = b as number | string;
  if (op === "<") return x < y;
  if (op === ">") return x > y;
  if (op === "<=") return x <= y;
  return x >= y;
}

function arithmetic(op: string, a: Value, b: Value): Value {
  if (op === "+" && typeof a === "string" && typeof b === "string") return a + b;
  if (typeof a !== "number" || typeof b !== "number") return null;
  if (op === "+") return a + b;
  if (op === "-") return a - b;
  if (op === "*") return a * b;
  if (b === 0) return null;
  return op === "/" ? a / b : a % b;
}

function likeRegex(pattern: string, escapeChar: string | undefined): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (escapeChar !== undefined && c === escapeChar && i + 1 < pattern.length) {
      source += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    } else if (c === "%") source += ".*";
    else if (c === "_") source += ".";
    else source += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "s");
}

/** AMQP descriptor codes of rule descriptions, as the client reads them (`enumerate-rules`). */
const RULE_DESCRIPTION = 0x13700000004;
const SQL_FILTER = 0x1370000006;
const CORRELATION_FILTER = 0x1370000009;
const EMPTY_RULE_ACTION = 0x13700000005;

/** A rule as the `enumerate-rules` answer carries it: described lists of filter, action and name. */
export function ruleDescription(rule: RuleConfig): unknown {
  const described = (code: number, items: unknown[]) =>
    types.described(types.wrap_ulong(code), types.wrap_list(items));
  const str = (value: unknown) =>
    value === undefined || value === null ? null : types.wrap_string(String(value));
  let filter: unknown;
  if ("sql" in rule.filter) {
    filter = described(SQL_FILTER, [types.wrap_string(rule.filter.sql), types.wrap_int(20)]);
  } else {
    const c = rule.filter.correlation;
    const props = c.applicationProperties ?? {};
    filter = described(CORRELATION_FILTER, [
      str(c.correlationId),
      str(c.messageId),
      str(c.to),
      str(c.replyTo),
      str(c.subject),
      str(c.sessionId),
      str(c.replyToSessionId),
      str(c.contentType),
      types.wrap_map(props),
    ]);
  }
  return described(RULE_DESCRIPTION, [
    filter,
    described(EMPTY_RULE_ACTION, []),
    types.wrap_string(rule.name),
  ]);
}

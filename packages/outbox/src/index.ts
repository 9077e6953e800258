export {
  createOutbox,
  type Outbox,
  type OutboxBase,
  type OutboxOptions,
  type Queryable,
} from "./postgres.js";
export type { Lag, ParkedRow, Relay, RelayOptions, RelayStats } from "./relay.js";

/**
 * The interface of a step kind (gc.ts, poly.ts, mul.ts): its cost in the schedule, what the parties
 * derive from the schedule once per session, the dealer's part, and each party's offline and online
 * protocol. The session code (party.ts, dealer.ts) sequences the steps and dispatches to these;
 * the linear segments (input, segment shares, outputs) are in linear.ts.
 *
 * Per image the order is fixed:
 *   dealer    seed, the segments' correlations, then kind by kind (STEP_KINDS order) `dealer.deal`
 *             of every step (an entry of another kind's step yields nothing)
 *   client    `dealt` (kind by kind, as the dealer wrote), `offline` (step order, one frame in all),
 *             `receive` (step order)
 *   server    `read` (step order, from the client's frame), `send` (step order), an empty frame
 *   online    the masked input (tag 0), then `online` step by step from the step's first round tag,
 *             then the server's output shares
 */
import type { MpcParams, MsgCost } from '../cost.js'
import type { Channel } from '../net.js'
import type { ClientCorrelations, ServerCorrelations } from '../offline.js'
import type { ClientStreams, Leak, Reader, ServerStreams } from '../protocol.js'
import type { MpcSchedule, Step } from '../types.js'

/** A step's counts in the schedule's totals and its layer row (only the keys it has). */
export interface StepCounts {
  reluCount?: number
  comparisons?: number
  triples?: number
  andGates?: number
}

/** What one image gives the server's steps. */
export interface ServerImage {
  s: MpcSchedule
  /** The client. */
  ch: Channel
  img: number
  ss: ServerStreams
  /** The server's masked value x - r of each source; a step sets those of its sources online. */
  masked: BigUint64Array[]
  /** The server's share of segment j (protocol order, linear.ts segmentsOf): M (x - r) + s + b. */
  share(j: number): BigUint64Array
  /** Garbled-circuit tweaks: img * 1024, counted up per garbling in step order. */
  tweak: number
  /** TEST ONLY (protocol.ts `Leak`): absent outside the wire test. */
  leak?: Leak
}

/** What one image gives the client's steps. */
export interface ClientImage {
  s: MpcSchedule
  /** The server. */
  ch: Channel
  img: number
  cs: ClientStreams
  /** The client's mask r of each source. */
  r: BigUint64Array[]
  /** The client's share of each segment (protocol order), M r - s from the dealer. */
  yc: BigUint64Array[]
  /** Garbled-circuit tweaks, as the server counts them. */
  tweak: number
}

export interface ServerStep {
  /** Bytes of this step's part of the client's offline message (the server receives it at exactly that size). */
  bytes: number
  /** Offline: read this step's part of the client's offline message. */
  read(msg: Reader): void
  /** Offline, once the client's message is read: send this step's own offline frames (waiting for the socket to drain between them). */
  send?(): Promise<void>
  /** Online, given the server's share of the step's segment: the step's rounds from `tag`; sets the step's sources in `masked`. */
  online(ys: BigUint64Array, tag: number): Promise<void>
}

export interface ClientStep {
  /** Offline: read this step's part of the dealer's material. */
  dealt(material: Reader): void
  /** Offline: this step's part of the client's offline message. */
  offline(): Buffer[]
  /** Offline, once the client's message is sent: receive this step's frames from the server. */
  receive?(): Promise<void>
  /** Online: the step's rounds from `tag`. */
  online(tag: number): Promise<void>
}

/**
 * The dealer's part. The dealer never sees the schedule: both parties send it an offline
 * specification with one field per kind (`key`), one entry per step (`none` for steps of other
 * kinds); it checks the entries and deals from them alone.
 */
export interface DealerPart<L, D> {
  key: string
  none: D
  spec(layout: L): D
  /**
   * Ring elements (8 bytes each) of the client's material an entry read from the network asks for,
   * exactly what `deal` yields (the client receives the material at that size; the dealer caps it);
   * undefined if malformed.
   */
  check(entry: unknown): number | undefined
  /** The client's correlations for step k (the server expands its halves from its seed). */
  deal(entry: D, k: number, cs: ClientStreams, ss: ServerStreams): Buffer[]
}

/**
 * Without a dealer (offline.ts): the same material, made by the two parties with oblivious transfer.
 * `client` returns exactly the bytes `dealer.deal` would have given the client for this entry;
 * `server` sets the server's streams (ServerStreams.set) that the dealer's deal assumed.
 */
export interface TwoPartyPart<D> {
  /** Random OTs, and the sizes of the Gilboa product calls in order, the entry takes per image. */
  needs(entry: D): { ots: number; products: number[] }
  client(entry: D, k: number, cs: ClientStreams, corr: ClientCorrelations): Promise<Buffer[]>
  server(entry: D, k: number, ss: ServerStreams, corr: ServerCorrelations): Promise<void>
}

export interface StepKind<S extends Step = Step, L = unknown, D = unknown> {
  kind: S['kind']
  /** The layer row's kind in the schedule. */
  layer: 'gc' | 'poly'
  /** Bytes and rounds per image as predicted, and the step's counts. */
  cost(p: MpcParams, st: S): { msg: MsgCost; counts: StepCounts }
  /** What the parties derive from the schedule once per session. */
  layout(s: MpcSchedule, st: S, k: number): L
  /** Online rounds (consecutive round tags) the step takes. */
  rounds(layout: L): number
  dealer: DealerPart<L, D>
  twoParty: TwoPartyPart<D>
  server(cx: ServerImage, st: S, k: number, layout: L): ServerStep
  client(cx: ClientImage, st: S, k: number, layout: L): ClientStep
}

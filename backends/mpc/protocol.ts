/**
 * What the step kinds share: the protocol name, the per-image pseudo-random streams both parties
 * derive from their dealer seeds (named by step and purpose), checked reading of messages, and the
 * dealer's share of a product. Each step kind's own protocol is in steps/*.ts.
 */
import { ProtocolError, type Channel, type Phase } from './net.js'
import { Prg, ringFromBytes } from './ring.js'

export const PROTOCOL = 'pic-mpc/1'

/**
 * TEST ONLY: deliberate leaks, so that test/backends/mpc/wire.test.ts can show that its checks fail
 * on a broken protocol. Only the tests set it (in the options objects of runDealer / runServe); the
 * CLI never does. Absent (the default), the protocol is unchanged.
 */
export interface Leak {
  /** The dealer (without a dealer: the client itself) derives the client's masks from the public all-zero seed. */
  zeroClientSeed?: boolean
  /** The server's garbled-circuit output masks U are zero (the client decodes v itself). */
  zeroOutputMask?: boolean
  /** The server garbles every chunk from the same all-zero seed. */
  fixedGarbleSeed?: boolean
  /** Without a dealer: the server's Gilboa corrections are y 2^j itself, unmasked by its OT messages. */
  unmaskedProducts?: boolean
  /** Without a dealer: the server sends the client its operators in the dealer's form, weights included. */
  weightedOperatorsToClient?: boolean
}

/** The per-image streams the client derives from its dealer seed. */
export class ClientStreams {
  constructor(private readonly seed: Buffer) {}
  r(source: number, size: number): BigUint64Array {
    return new Prg(this.seed, `r/${source}`).ring(size)
  }
  a(step: number, level: number, m: number): BigUint64Array {
    return new Prg(this.seed, `a/${step}/${level}`).ring(m)
  }
  b(step: number, level: number, j: number, m: number): BigUint64Array {
    return new Prg(this.seed, `b/${step}/${level}/${j}`).ring(m)
  }
  choice(step: number, bits: number): Uint8Array {
    return new Prg(this.seed, `c/${step}`).bits(bits)
  }
}

/**
 * The per-image streams the server derives from its seed. With the dealer, every stream comes from the
 * seed the dealer sent. Without one (offline.ts), the server draws the seed itself, and the values
 * that the two-party offline phase produces jointly (segment masks summed over the HE terms,
 * random-OT pairs, the server's Beaver shares) are set under the same names before the steps read them.
 */
export class ServerStreams {
  private readonly fixed = new Map<string, BigUint64Array | Buffer>()
  constructor(private readonly seed: Buffer) {}
  /** Set the stream `name` (as the getters below name theirs) to values made jointly with the client. */
  set(name: string, v: BigUint64Array | Buffer): void {
    this.fixed.set(name, v)
  }
  private ringOf(name: string, m: number): BigUint64Array {
    const v = this.fixed.get(name)
    if (v === undefined) return new Prg(this.seed, name).ring(m)
    if (!(v instanceof BigUint64Array) || v.length !== m) throw new Error(`internal: stream ${name} holds ${v.length} values, ${m} asked for`)
    return v
  }
  s(segment: number, size: number): BigUint64Array {
    return this.ringOf(`s/${segment}`, size)
  }
  a(step: number, level: number, m: number): BigUint64Array {
    return this.ringOf(`a/${step}/${level}`, m)
  }
  b(step: number, level: number, j: number, m: number): BigUint64Array {
    return this.ringOf(`b/${step}/${level}/${j}`, m)
  }
  q(step: number, level: number, m: number): BigUint64Array {
    return this.ringOf(`q/${step}/${level}`, m)
  }
  c(step: number, level: number, j: number, m: number): BigUint64Array {
    return this.ringOf(`c/${step}/${level}/${j}`, m)
  }
  /** Random-OT message pairs: bit j's m0 at bytes 32j, m1 at 32j + 16. */
  ot(step: number, bits: number): Buffer {
    const v = this.fixed.get(`ot/${step}`)
    if (v === undefined) return new Prg(this.seed, `ot/${step}`).bytes(bits * 32)
    if (!Buffer.isBuffer(v) || v.length !== bits * 32) throw new Error(`internal: stream ot/${step} holds ${v.length} bytes, ${bits * 32} asked for`)
    return v
  }
}

/** Read consecutive slices of a buffer with length checks. */
export class Reader {
  private o = 0
  constructor(
    private readonly b: Buffer,
    private readonly what: string,
  ) {}
  take(n: number): Buffer {
    if (this.o + n > this.b.length) throw new ProtocolError(`malformed ${this.what}: too short`)
    const s = this.b.subarray(this.o, this.o + n)
    this.o += n
    return s
  }
  /** The next n ring elements. */
  ring(n: number): BigUint64Array {
    return ringFromBytes(this.take(n * 8), n, this.what)
  }
  end(): void {
    if (this.o !== this.b.length) throw new ProtocolError(`malformed ${this.what}: ${this.b.length - this.o} trailing bytes`)
  }
}

/** Receive n ring elements, checking the length (the peer is told on a mismatch). */
export async function recvRing(ch: Channel, phase: Phase, tag: number, n: number, what: string): Promise<BigUint64Array> {
  return ringFromBytes(await ch.recv(phase, tag, what, n * 8), n, what)
}

/** The dealer: the client's share of x * y given the server's (a Beaver product). */
export function productShare(x: BigUint64Array, y: BigUint64Array, server: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(x.length)
  for (let i = 0; i < x.length; i++) out[i] = x[i] * y[i] - server[i]
  return out
}

/**
 * Largest number of ring elements a session's offline specification may ask the dealer for per image
 * (the sources' masks and the client's material, 512 MiB): checked before anything is allocated, and
 * generated only once both parties agree, one segment or step at a time.
 */
export const MAX_ELEMENTS = 1 << 26

/** A count read from the network: an integer from 0 to MAX_ELEMENTS. */
export function isCount(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_ELEMENTS
}

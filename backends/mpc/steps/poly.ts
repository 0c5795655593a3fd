/**
 * Polynomial steps (Poly, x*x, Pow 2, partial ReLU with a polynomial): the segment gives t, the input
 * normalized per channel; the sources are B_1(t) = t .. B_d(t), powers or Chebyshev polynomials,
 * built by Beaver products level by level (ceil(log2 d) levels: t^h * t^j, Chebyshev via
 * T_{h+j} = 2 T_h T_j - T_{h-j}); the coefficients fold into the next segment. Degree 1, or no
 * positions, is local truncation only.
 *
 *   dealer   per level, the client's shares of a^2 (square levels) and a * b_j; the masks a, b_j of
 *            both parties and the server's product shares come from the seeds
 *   client   offline: sends its masked truncated t - r_1 and its level-1 opening t - a
 *   online   level 1 (tag t): the server sends its opening; each further level (tag t + L): both
 *            open t^h - a and t^j - b_j; last (tag t + levels): the client returns B_k - r_k, k >= 2
 */
import { RING, type MsgCost } from '../cost.js'
import { HEADER_BYTES } from '../net.js'
import { isCount, productShare, recvRing } from '../protocol.js'
import { add, concatRing, gather, mul, ringToBytes, sub, truncShare } from '../ring.js'
import type { PolyStep } from '../types.js'
import type { StepKind } from './kind.js'

// ---------------------------------------------------------------------------------------------
// cost

/** Level L of a degree-d polynomial: h = 2^(L-1); products t^h * t^j for j in js, and t^h squared. */
export interface PolyLevel {
  h: number
  js: number[]
  square: boolean
}

/** The Beaver products that build B_2 .. B_d from B_1 in ceil(log2 d) levels. */
export function polyLevels(d: number): PolyLevel[] {
  const out: PolyLevel[] = []
  for (let h = 1; h < d; h *= 2) {
    const js: number[] = []
    for (let j = 1; j < h && h + j <= d; j++) js.push(j)
    out.push({ h, js, square: 2 * h <= d })
  }
  return out
}

/**
 * A polynomial step on n elements, degree d on m of them: level 1 opens t - a (the client's half
 * offline, the server's online), every further level exchanges the openings of t^h and t^j both
 * ways, and the client returns its masked shares of B_2 .. B_d.
 */
export function polyCost(n: number, m: number, d: number): MsgCost {
  const levels = d >= 2 ? polyLevels(d) : []
  let online = 0
  let dealer = 0
  levels.forEach((lv, i) => {
    const opens = 1 + lv.js.length
    online += i === 0 ? HEADER_BYTES + m * RING : 2 * (HEADER_BYTES + opens * m * RING)
    dealer += (lv.js.length + (lv.square ? 1 : 0)) * m * RING
  })
  if (levels.length) online += HEADER_BYTES + (d - 1) * m * RING
  return {
    online: m > 0 ? online : 0,
    offlineC2S: n * RING + (levels.length ? m * RING : 0),
    offlineS2C: 0,
    dealerToClient: m > 0 ? dealer : 0,
    rounds: m > 0 && levels.length ? levels.length + 1 : 0,
  }
}

// ---------------------------------------------------------------------------------------------
// layout

/** What the parties and the dealer derive: m elements through Beaver products, and the levels (none for degree 1). */
export interface PolyLayout {
  m: number
  levels: PolyLevel[]
}

export function polyLayout(st: PolyStep): PolyLayout {
  const m = st.degree < 2 ? 0 : st.positions ? st.positions.length : st.segment.size
  return { m, levels: m > 0 ? polyLevels(st.degree) : [] }
}

// ---------------------------------------------------------------------------------------------
// both parties: the product levels

/** One party's Beaver correlations for one polynomial step, per level. */
export interface PolyCorr {
  a: BigUint64Array[]
  b: BigUint64Array[][]
  /** Shares of a^2 (square levels) and a * b_j. */
  q: (BigUint64Array | undefined)[]
  c: BigUint64Array[][]
}

/**
 * Build this party's shares of B_2 .. B_d at the step's positions from its share of t, level by
 * level: open t^h - a and t^j - b_j (`open` returns the other party's halves), form the products,
 * truncate, and for Chebyshev apply T_{h+j} = 2 T_h T_j - T_{h-j}. Returns B_1 .. B_d (index k - 1).
 */
export async function polyProducts(
  party: 0 | 1, frac: number, basis: 'power' | 'chebyshev', levels: PolyLevel[], t: BigUint64Array, corr: PolyCorr,
  open: (level: number, mine: BigUint64Array) => Promise<BigUint64Array>,
): Promise<BigUint64Array[]> {
  const m = t.length
  const B: BigUint64Array[] = [t]
  const one = party === 0 ? 1n << BigInt(frac) : 0n
  for (const [L, lv] of levels.entries()) {
    const xs = [B[lv.h - 1], ...lv.js.map((j) => B[j - 1])]
    const masks = [corr.a[L], ...corr.b[L]]
    const mine = new BigUint64Array(m * xs.length)
    xs.forEach((x, o) => {
      for (let i = 0; i < m; i++) mine[o * m + i] = x[i] - masks[o][i]
    })
    const other = await open(L, mine)
    const d = new BigUint64Array(mine.length)
    for (let i = 0; i < d.length; i++) d[i] = mine[i] + other[i]
    const a = corr.a[L]
    const finish = (k: number, prod: BigUint64Array, low: number) => {
      const tr = truncShare(prod, frac, party)
      if (basis === 'chebyshev') {
        const prev = low === 0 ? undefined : B[low - 1]
        for (let i = 0; i < m; i++) tr[i] = 2n * tr[i] - (prev ? prev[i] : one)
      }
      B[k - 1] = tr
    }
    if (lv.square) {
      const q = corr.q[L]!
      const prod = new BigUint64Array(m)
      for (let i = 0; i < m; i++) prod[i] = (party === 0 ? d[i] * d[i] : 0n) + 2n * d[i] * a[i] + q[i]
      finish(2 * lv.h, prod, 0)
    }
    lv.js.forEach((j, o) => {
      const b = corr.b[L][o]
      const c = corr.c[L][o]
      const off = (o + 1) * m
      const prod = new BigUint64Array(m)
      for (let i = 0; i < m; i++) prod[i] = (party === 0 ? d[i] * d[off + i] : 0n) + d[i] * b[i] + d[off + i] * a[i] + c[i]
      finish(lv.h + j, prod, lv.h - j)
    })
  }
  return B
}

// ---------------------------------------------------------------------------------------------
// the step kind

export const poly: StepKind<PolyStep, PolyLayout, PolyLayout> = {
  kind: 'poly',
  layer: 'poly',

  cost(p, st) {
    const m = st.positions ? st.positions.length : st.segment.size
    return { msg: polyCost(st.segment.size, m, st.degree), counts: { triples: m * (st.degree - 1) } }
  },

  layout: (_s, st) => polyLayout(st),
  rounds: (L) => (L.levels.length ? L.levels.length + 1 : 0),

  dealer: {
    key: 'poly',
    none: { m: 0, levels: [] },
    spec: (L) => L,
    check(e) {
      const d = e as PolyLayout
      if (!d || !isCount(d.m) || !Array.isArray(d.levels) || d.levels.length > 8) return undefined
      let total = 0
      for (const lv of d.levels) {
        if (!lv || !Number.isInteger(lv.h) || typeof lv.square !== 'boolean' || !Array.isArray(lv.js) || lv.js.length > 64 || !lv.js.every((j) => Number.isInteger(j))) return undefined
        total += d.m * (lv.js.length + (lv.square ? 1 : 0))
      }
      return total
    },
    deal({ m, levels }, k, cs, ss) {
      const parts: Buffer[] = []
      levels.forEach((lv, L) => {
        const a = add(cs.a(k, L, m), ss.a(k, L, m))
        if (lv.square) parts.push(ringToBytes(productShare(a, a, ss.q(k, L, m))))
        for (const j of lv.js) parts.push(ringToBytes(productShare(a, add(cs.b(k, L, j, m), ss.b(k, L, j, m)), ss.c(k, L, j, m))))
      })
      return parts
    },
  },

  // without a dealer, per level as the dealer deals: a^2 = a_c^2 + a_s^2 + a_c (2 a_s) and
  // a b_j = a_c b_c + a_s b_s + a_c b_s + b_c a_s, cross terms by Gilboa products (client's factor first)
  twoParty: {
    needs: ({ m, levels }) => ({ ots: 0, products: levels.flatMap((lv) => [...(lv.square ? [m] : []), ...lv.js.flatMap(() => [m, m])]) }),
    async client({ m, levels }, k, cs, corr) {
      const parts: Buffer[] = []
      for (const [L, lv] of levels.entries()) {
        const a = cs.a(k, L, m)
        if (lv.square) parts.push(ringToBytes(add(mul(a, a), await corr.products(a))))
        for (const j of lv.js) {
          const b = cs.b(k, L, j, m)
          const g1 = await corr.products(a)
          const g2 = await corr.products(b)
          parts.push(ringToBytes(add(add(mul(a, b), g1), g2)))
        }
      }
      return parts
    },
    async server({ m, levels }, k, ss, corr) {
      for (const [L, lv] of levels.entries()) {
        const a = ss.a(k, L, m)
        if (lv.square) ss.set(`q/${k}/${L}`, add(mul(a, a), await corr.products(add(a, a))))
        for (const j of lv.js) {
          const b = ss.b(k, L, j, m)
          const h1 = await corr.products(b)
          const h2 = await corr.products(a)
          ss.set(`c/${k}/${L}/${j}`, add(add(mul(a, b), h1), h2))
        }
      }
    },
  },

  server(cx, st, k, { m, levels }) {
    const p = cx.s.params
    let pow1: BigUint64Array
    let ec: BigUint64Array
    return {
      bytes: (st.segment.size + (levels.length ? m : 0)) * RING,
      read(msg) {
        pow1 = msg.ring(st.segment.size)
        ec = msg.ring(levels.length ? m : 0)
      },
      async online(ys, tag) {
        const ts = truncShare(ys, p.weightFracBits, 1)
        cx.masked[st.sources[0]] = add(ts, pow1)
        if (!levels.length) return
        const tp = st.positions ? gather(ts, Int32Array.from(st.positions)) : ts
        const ss = cx.ss
        const corr: PolyCorr = {
          a: levels.map((_, L) => ss.a(k, L, m)),
          b: levels.map((lv, L) => lv.js.map((j) => ss.b(k, L, j, m))),
          q: levels.map((lv, L) => (lv.square ? ss.q(k, L, m) : undefined)),
          c: levels.map((lv, L) => lv.js.map((j) => ss.c(k, L, j, m))),
        }
        const B = await polyProducts(1, p.fracBits, st.basis, levels, tp, corr, async (L, mine) => {
          cx.ch.send('online', tag + L, ringToBytes(mine))
          if (L === 0) return ec
          return await recvRing(cx.ch, 'online', tag + L, mine.length, 'openings')
        })
        const back = await recvRing(cx.ch, 'online', tag + levels.length, (st.degree - 1) * m, 'masked products')
        for (let d = 2; d <= st.degree; d++) cx.masked[st.sources[d - 1]] = add(B[d - 1], back.subarray((d - 2) * m, (d - 1) * m))
      },
    }
  },

  client(cx, st, k, { m, levels }) {
    const p = cx.s.params
    let corr: PolyCorr | undefined
    let tp: BigUint64Array
    return {
      dealt(material) {
        if (!levels.length) return
        const q: (BigUint64Array | undefined)[] = []
        const c: BigUint64Array[][] = []
        for (const lv of levels) {
          q.push(lv.square ? material.ring(m) : undefined)
          c.push(lv.js.map(() => material.ring(m)))
        }
        corr = { a: levels.map((_, L) => cx.cs.a(k, L, m)), b: levels.map((lv, L) => lv.js.map((j) => cx.cs.b(k, L, j, m))), q, c }
      },
      offline() {
        const tc = truncShare(cx.yc[k], p.weightFracBits, 0)
        const parts = [ringToBytes(sub(tc, cx.r[st.sources[0]]))]
        if (corr) {
          tp = st.positions ? gather(tc, Int32Array.from(st.positions)) : tc
          parts.push(ringToBytes(sub(tp, corr.a[0])))
        }
        return parts
      },
      async online(tag) {
        if (!levels.length) return
        const B = await polyProducts(0, p.fracBits, st.basis, levels, tp, corr!, async (L, mine) => {
          if (L > 0) cx.ch.send('online', tag + L, ringToBytes(mine))
          return await recvRing(cx.ch, 'online', tag + L, mine.length, 'openings')
        })
        cx.ch.send('online', tag + levels.length, ringToBytes(concatRing(B.slice(1).map((b, i) => sub(b, cx.r[st.sources[i + 1]])))))
      },
    }
  },
}

/**
 * Products of two secret values (x * p(x) from the MaxPool lowering), elementwise, no broadcasting:
 * a Beaver triple (a, b, c = ab) per element. The two factors are segments: the step's own and its
 * second (linear.ts secondSegment), both truncated locally.
 *
 *   dealer   the client's share of c = a * b (the masks of both parties and the server's share of c
 *            come from the seeds)
 *   client   offline: sends its openings x - a, y - b
 *   online   tag t: the server sends its openings; tag t + 1: the client returns its share of the
 *            product, masked: xy - r
 */
import { RING, type MsgCost } from '../cost.js'
import { HEADER_BYTES } from '../net.js'
import { isCount, productShare, recvRing } from '../protocol.js'
import { add, concatRing, mul as mulRing, ringToBytes, sub, truncShare } from '../ring.js'
import type { MulStep } from '../types.js'
import type { StepKind } from './kind.js'
import { secondSegment } from './linear.js'

/** A Beaver product of two secret n-vectors: the client's openings go offline, the server's online. */
export function mulCost(n: number): MsgCost {
  return {
    online: HEADER_BYTES + 2 * n * RING + HEADER_BYTES + n * RING,
    offlineC2S: 2 * n * RING,
    offlineS2C: 0,
    dealerToClient: n * RING,
    rounds: 2,
  }
}

/** The layout is the number of elements. */
export const mul: StepKind<MulStep, number, number> = {
  kind: 'mul',
  layer: 'poly',

  cost: (_p, st) => ({ msg: mulCost(st.segment.size), counts: { triples: st.segment.size } }),

  layout: (_s, st) => st.segment.size,
  rounds: () => 2,

  dealer: {
    key: 'mul',
    none: 0,
    spec: (n) => n,
    check: (n) => (isCount(n) ? n : undefined),
    deal(n, k, cs, ss) {
      if (!n) return []
      return [ringToBytes(productShare(add(cs.a(k, 0, n), ss.a(k, 0, n)), add(cs.b(k, 0, 0, n), ss.b(k, 0, 0, n)), ss.c(k, 0, 0, n)))]
    },
  },

  // without a dealer: a b = a_c b_c + a_s b_s + a_c b_s + b_c a_s, the cross terms by Gilboa products;
  // the server's share c is a_s b_s plus its shares of the cross terms
  twoParty: {
    needs: (n) => ({ ots: 0, products: n ? [n, n] : [] }),
    async client(n, k, cs, corr) {
      if (!n) return []
      const a = cs.a(k, 0, n)
      const b = cs.b(k, 0, 0, n)
      const g1 = await corr.products(a)
      const g2 = await corr.products(b)
      return [ringToBytes(add(add(mulRing(a, b), g1), g2))]
    },
    async server(n, k, ss, corr) {
      if (!n) return
      const a = ss.a(k, 0, n)
      const b = ss.b(k, 0, 0, n)
      const h1 = await corr.products(b)
      const h2 = await corr.products(a)
      ss.set(`c/${k}/0/0`, add(add(mulRing(a, b), h1), h2))
    },
  },

  server(cx, st, k, n) {
    const p = cx.s.params
    let theirs: BigUint64Array
    return {
      bytes: 2 * n * RING,
      read(msg) {
        theirs = msg.ring(2 * n)
      },
      async online(ys, tag) {
        const t = concatRing([ys, cx.share(secondSegment(cx.s, k))].map((y) => truncShare(y, p.weightFracBits, 1)))
        const a = cx.ss.a(k, 0, n)
        const b = cx.ss.b(k, 0, 0, n)
        const c = cx.ss.c(k, 0, 0, n)
        const mine = sub(t, concatRing([a, b]))
        cx.ch.send('online', tag, ringToBytes(mine))
        const d = add(mine, theirs)
        const prod = new BigUint64Array(n)
        for (let i = 0; i < n; i++) prod[i] = d[i] * b[i] + d[n + i] * a[i] + c[i]
        const back = await recvRing(cx.ch, 'online', tag + 1, n, 'masked products')
        cx.masked[st.source] = add(truncShare(prod, p.fracBits, 1), back)
      },
    }
  },

  client(cx, st, k, n) {
    const p = cx.s.params
    let c: BigUint64Array
    let a: BigUint64Array
    let b: BigUint64Array
    let mine: BigUint64Array
    return {
      dealt(material) {
        c = material.ring(n)
      },
      offline() {
        const t = concatRing([cx.yc[k], cx.yc[secondSegment(cx.s, k)]].map((y) => truncShare(y, p.weightFracBits, 0)))
        a = cx.cs.a(k, 0, n)
        b = cx.cs.b(k, 0, 0, n)
        mine = sub(t, concatRing([a, b]))
        return [ringToBytes(mine)]
      },
      async online(tag) {
        const other = await recvRing(cx.ch, 'online', tag, 2 * n, 'openings')
        const d = add(mine, other)
        const prod = new BigUint64Array(n)
        for (let i = 0; i < n; i++) prod[i] = d[i] * d[n + i] + d[i] * b[i] + d[n + i] * a[i] + c[i]
        cx.ch.send('online', tag + 1, ringToBytes(sub(truncShare(prod, p.fracBits, 0), cx.r[st.source])))
      },
    }
  },
}

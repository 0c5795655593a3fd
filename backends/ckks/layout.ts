/**
 * Slot layouts and linear transforms. A layout says in which slots (of which ciphertext) each element
 * of a tensor sits, possibly replicated. A linear map between layouts is compiled to plaintext
 * diagonals: out = reduce(sum_{c,k} P_{c,k} * rot(x_c, k)), where the optional reduction is a
 * rotate-and-sum with steps step, 2 step, ... that adds each output's partial slots. Diagonals are
 * grouped baby-step giant-step. Output layouts come in two families:
 *  - blockRows(B, R): output r at slot B floor(r / R) + r mod R, reduction step R over a block of B
 *    slots (the "hybrid" diagonal method, rows spread over blocks of a replicated input);
 *  - replicated(B): output r at slot r and r + B j for every j (reduction step B around the whole
 *    ring), so the next map can use the hybrid method. replicated(S) also holds tensors larger than
 *    the ring: element r at slot r mod S of ciphertext floor(r / S), one transform per ciphertext
 *    over the rows it holds (they share the baby-step rotations of the inputs).
 */

/** A tensor or transform output needs more slots than the ring has (a larger ring may fit it). */
export class SlotOverflowError extends Error {}

/** Sparse matrix stored by columns: column j lists (row, value) pairs. */
export interface SparseCols {
  readonly rows: number
  readonly cols: number
  readonly start: Int32Array
  readonly idx: Int32Array
  readonly val: Float64Array
}

export function identityCols(n: number): SparseCols {
  const start = new Int32Array(n + 1)
  const idx = new Int32Array(n)
  const val = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    start[i + 1] = i + 1
    idx[i] = i
    val[i] = 1
  }
  return { rows: n, cols: n, start, idx, val }
}

export function isIdentity(m: SparseCols): boolean {
  if (m.rows !== m.cols) return false
  for (let j = 0; j < m.cols; j++) {
    if (m.start[j + 1] - m.start[j] !== 1) return false
    if (m.idx[m.start[j]] !== j || m.val[m.start[j]] !== 1) return false
  }
  return true
}

/** Build columns from a function giving the dense image of column j. */
export function colsFromDense(rows: number, cols: number, column: (j: number) => Float64Array): SparseCols {
  const start = new Int32Array(cols + 1)
  const idx: number[] = []
  const val: number[] = []
  for (let j = 0; j < cols; j++) {
    const v = column(j)
    for (let r = 0; r < rows; r++)
      if (v[r] !== 0) {
        idx.push(r)
        val.push(v[r])
      }
    start[j + 1] = idx.length
  }
  return { rows, cols, start, idx: Int32Array.from(idx), val: Float64Array.from(val) }
}

/** Dense copy of column j. */
export function denseCol(m: SparseCols, j: number): Float64Array {
  const v = new Float64Array(m.rows)
  for (let p = m.start[j]; p < m.start[j + 1]; p++) v[m.idx[p]] += m.val[p]
  return v
}

/** diag(alpha) * m. */
export function scaleRows(m: SparseCols, alpha: Float64Array): SparseCols {
  const val = new Float64Array(m.val.length)
  for (let p = 0; p < val.length; p++) val[p] = m.val[p] * alpha[m.idx[p]]
  return { ...m, val }
}

/** Output layout of a linear transform. */
export type OutSpec =
  | { readonly kind: 'blockRows'; readonly B: number; readonly R: number; readonly batch?: Batch }
  | { readonly kind: 'replicated'; readonly B: number; readonly batch?: Batch }
  /** Output r at position slots[r] (ciphertext floor(slots[r] / S)), no replicas, no reduction: the gapped outputs of a strided map. */
  | { readonly kind: 'slots'; readonly slots: Int32Array }

/**
 * K images of `per` elements each, interleaved: element i of image b is row i K + b of the spec, so
 * a map that acts on every image alike has the diagonals of one image, K times denser (the slots
 * of CryptoNets' batching, one image per slot residue).
 */
export interface Batch {
  readonly K: number
  readonly per: number
}

/** The spec with K images of n / K elements interleaved (unchanged for K = 1 and gapped specs). */
export function withBatch(spec: OutSpec, K: number, n: number): OutSpec {
  if (K <= 1 || spec.kind === 'slots') return spec
  return { ...spec, batch: { K, per: n / K } }
}

export function specName(spec: OutSpec): string {
  const b = spec.kind !== 'slots' && spec.batch ? `, ${spec.batch.K} images interleaved` : ''
  if (spec.kind === 'replicated') return `replicated(B=${spec.B}${b})`
  if (spec.kind === 'blockRows') return `blockRows(B=${spec.B}, R=${spec.R}${b})`
  return 'gapped'
}

/** Where the elements of a tensor live: per element, a list of positions ct * S + slot. */
export interface Layout {
  readonly n: number
  readonly S: number
  readonly cts: number
  readonly start: Int32Array
  readonly pos: Int32Array
  /** How the layout was made, when it is a transform output (elementwise ops keep it). */
  readonly spec?: OutSpec
}

export function specReduction(spec: OutSpec, S: number): { step: number; count: number } {
  if (spec.kind === 'slots') return { step: S, count: 0 }
  if (spec.kind === 'blockRows') return { step: spec.R, count: Math.round(Math.log2(spec.B / spec.R)) }
  return { step: spec.B, count: Math.round(Math.log2(S / spec.B)) }
}

export function primarySlot(spec: OutSpec, r: number): number {
  if (spec.kind === 'slots') return spec.slots[r]
  if (spec.batch) r = (r % spec.batch.per) * spec.batch.K + Math.floor(r / spec.batch.per)
  if (spec.kind === 'blockRows') return spec.B * Math.floor(r / spec.R) + (r % spec.R)
  return r
}

export function specFits(spec: OutSpec, n: number, S: number): boolean {
  if (spec.kind === 'slots') return spec.slots.length === n
  if (spec.kind === 'blockRows') return spec.R <= spec.B && spec.B <= S && Math.ceil(n / spec.R) <= S / spec.B
  return (n <= spec.B || spec.B === S) && spec.B <= S
}

/** Ciphertexts a layout of n elements takes: several only for replicated(S) beyond S elements. */
export function specCts(spec: OutSpec, n: number, S: number): number {
  if (spec.kind === 'slots') return Math.floor(Math.max(0, ...spec.slots) / S) + 1
  return spec.kind === 'replicated' && spec.B === S ? Math.max(1, Math.ceil(n / S)) : 1
}

export function layoutOfSpec(spec: OutSpec, n: number, S: number): Layout {
  const start = new Int32Array(n + 1)
  const pos: number[] = []
  for (let r = 0; r < n; r++) {
    const p = primarySlot(spec, r)
    if (spec.kind === 'replicated') for (let j = 0; j < S / spec.B; j++) pos.push(p + j * spec.B)
    else pos.push(p)
    start[r + 1] = pos.length
  }
  return { n, S, cts: specCts(spec, n, S), start, pos: Int32Array.from(pos), spec }
}

/** Slot map per ciphertext: slot -> element index or -1. */
export function slotMap(l: Layout): Int32Array {
  const m = new Int32Array(l.cts * l.S).fill(-1)
  for (let i = 0; i < l.n; i++) for (let p = l.start[i]; p < l.start[i + 1]; p++) m[l.pos[p]] = i
  return m
}

/** The first slot of each element. */
export function primaries(l: Layout): Int32Array {
  const out = new Int32Array(l.n)
  for (let i = 0; i < l.n; i++) out[i] = l.pos[l.start[i]]
  return out
}

/** One term of a transform: a matrix applied to one input ciphertext group with its layout. */
export interface TermInput {
  readonly layout: Layout
  readonly map: SparseCols
}

/** Diagonal key: input ciphertext c and rotation k in [0, S). */
export interface Diagonal {
  readonly term: number
  readonly ct: number
  readonly k: number
  /** Sparse plaintext: slots (partial slots of outputs) and values, before the giant-step pre-rotation. */
  readonly slots: number[]
  readonly values: number[]
}

export interface TransformPlan {
  readonly spec: OutSpec
  readonly diagonals: Diagonal[]
  readonly babyStep: number
  /** Rotation counts as planned. */
  readonly babyRotations: number
  readonly giantRotations: number
  readonly reduction: { step: number; count: number }
  /** Outputs over several ciphertexts: one plan per output ciphertext, in order. */
  readonly chunks?: readonly TransformPlan[]
}

function centered(x: number, S: number): number {
  let v = ((x % S) + S) % S
  if (v > S / 2) v -= S
  return v
}

const isPow2 = (x: number) => x > 0 && (x & (x - 1)) === 0

/**
 * Place every nonzero of every term on a diagonal for an output spec: the diagonal k = (slot of a
 * replica of the input) - (a partial slot of the output) of smallest |k| (positive on ties), first
 * replica and first candidate partial winning further ties. Integer arithmetic throughout (slot
 * counts and reduction steps are powers of two); placeDiagonalsGeneral is the same rule for any.
 */
export function placeDiagonals(terms: readonly TermInput[], spec: OutSpec, nOut: number, abortAbove = Infinity, keysOnly = false): Diagonal[] | undefined {
  const S = terms[0].layout.S
  if (!specFits(spec, nOut, S)) return undefined
  const { step, count } = specReduction(spec, S)
  if (!isPow2(S) || !isPow2(step) || S > 2 ** 24) return placeDiagonalsGeneral(terms, spec, nOut, abortAbove, keysOnly)
  const M = 2 ** count
  const mask = S - 1
  const half = S / 2
  const logS = Math.round(Math.log2(S))
  const e = Math.round(Math.log2(step))
  const soOf = new Int32Array(nOut)
  for (let o = 0; o < nOut; o++) soOf[o] = primarySlot(spec, o)
  const byKey = new Map<number, { term: number; ct: number; k: number; acc: Map<number, number> }>()
  // entries by compact key (term, ciphertext, k): an index array instead of a map lookup per nonzero
  let maxCts = 1
  for (const t of terms) maxCts = Math.max(maxCts, t.layout.cts)
  const slotOf = new Int32Array(terms.length * maxCts * S).fill(-1)
  const entries: { term: number; ct: number; k: number; acc: Map<number, number> }[] = []
  let tEntry = new Int32Array(1024)
  let tSlot = new Int32Array(1024)
  let tVal = new Float64Array(1024)
  let nnz = 0
  for (let t = 0; t < terms.length; t++) {
    const { layout, map } = terms[t]
    const pos = layout.pos
    const lstart = layout.start
    const mstart = map.start
    const midx = map.idx
    const mval = map.val
    for (let j = 0; j < map.cols; j++) {
      const p0 = lstart[j]
      const p1 = lstart[j + 1]
      if (p1 === p0) {
        if (mstart[j + 1] > mstart[j]) throw new Error('layout misses an element the transform reads')
        continue
      }
      for (let q = mstart[j]; q < mstart[j + 1]; q++) {
        const so = soOf[midx[q]]
        let best = 0x7fffffff
        let bestCt = 0
        let bestPartial = 0
        if (M === 1) {
          // no reduction: the only partial slot is the output's own
          bestPartial = so
          for (let p = p0; p < p1; p++) {
            const g = pos[p]
            let k = ((g & mask) - so) & mask
            if (k > half) k -= S
            const score = k < 0 ? -2 * k + 1 : 2 * k
            if (score < best) {
              best = score
              bestCt = g >> logS
              if (best === 0) break
            }
          }
        } else
          for (let p = p0; p < p1; p++) {
            const g = pos[p]
            const c = g >> logS
            const d = ((g & mask) - so) & mask
            const f1 = d >> e
            const f2 = (d - S) >> e
            for (let ci = 0; ci < 4; ci++) {
              let m = ci === 0 ? f1 : ci === 1 ? f1 + 1 : ci === 2 ? f2 : f2 + 1
              if (m > M - 1) m = M - 1
              if (m < 0) m = 0
              let k = (d - step * m) & mask
              if (k > half) k -= S
              const score = k < 0 ? -2 * k + 1 : 2 * k
              if (score < best) {
                best = score
                bestCt = c
                bestPartial = (so + step * m) & mask
              }
            }
            if (best === 0) break
          }
        const kAbs = (best & 1) === 1 ? -(best - 1) / 2 : best / 2
        const kk = kAbs & mask
        const compact = (t * maxCts + bestCt) * S + kk
        let at = slotOf[compact]
        if (at < 0) {
          slotOf[compact] = at = entries.length
          const en = { term: t, ct: bestCt, k: kk, acc: new Map<number, number>() }
          entries.push(en)
          byKey.set((t * 1024 + bestCt) * S + kk, en)
          if (count + 2 * Math.sqrt(entries.length) - 2 > abortAbove) return undefined
        }
        if (!keysOnly) {
          if (nnz === tEntry.length) {
            const grow = (a: Int32Array) => {
              const b = new Int32Array(a.length * 2)
              b.set(a)
              return b
            }
            tEntry = grow(tEntry)
            tSlot = grow(tSlot)
            const v = new Float64Array(tVal.length * 2)
            v.set(tVal)
            tVal = v
          }
          tEntry[nnz] = at
          tSlot[nnz] = bestPartial
          tVal[nnz++] = mval[q]
        }
      }
    }
  }
  if (keysOnly) return collectDiagonals(byKey)
  // (entry, slot, value) triples grouped by entry (counting sort), then by slot, duplicates summed
  const E = entries.length
  const first = new Int32Array(E + 1)
  for (let i = 0; i < nnz; i++) first[tEntry[i] + 1]++
  for (let e2 = 0; e2 < E; e2++) first[e2 + 1] += first[e2]
  const fill = first.slice(0, E)
  const order = new Int32Array(nnz)
  for (let i = 0; i < nnz; i++) order[fill[tEntry[i]]++] = i
  const out: Diagonal[] = []
  for (let e2 = 0; e2 < E; e2++) {
    const ids = order.subarray(first[e2], first[e2 + 1]).sort((a, b) => tSlot[a] - tSlot[b] || a - b)
    const slots: number[] = []
    const values: number[] = []
    for (const i of ids) {
      if (slots.length > 0 && slots[slots.length - 1] === tSlot[i]) values[values.length - 1] += tVal[i]
      else {
        slots.push(tSlot[i])
        values.push(tVal[i])
      }
    }
    const en = entries[e2]
    out.push({ term: en.term, ct: en.ct, k: en.k, slots, values })
  }
  out.sort((a, b) => a.term - b.term || a.ct - b.ct || a.k - b.k)
  return out
}

function collectDiagonals(byKey: Map<number, { term: number; ct: number; k: number; acc: Map<number, number> }>): Diagonal[] {
  const out: Diagonal[] = []
  for (const e of byKey.values()) {
    const slots = [...e.acc.keys()].sort((a, b) => a - b)
    out.push({ term: e.term, ct: e.ct, k: e.k, slots, values: slots.map((s) => e.acc.get(s)!) })
  }
  out.sort((a, b) => a.term - b.term || a.ct - b.ct || a.k - b.k)
  return out
}

/** placeDiagonals' rule in floating-point arithmetic, for any slot count and step. */
export function placeDiagonalsGeneral(terms: readonly TermInput[], spec: OutSpec, nOut: number, abortAbove = Infinity, keysOnly = false): Diagonal[] | undefined {
  const S = terms[0].layout.S
  if (!specFits(spec, nOut, S)) return undefined
  const { step, count } = specReduction(spec, S)
  const M = 2 ** count
  const byKey = new Map<number, { term: number; ct: number; k: number; acc: Map<number, number> }>()
  for (let t = 0; t < terms.length; t++) {
    const { layout, map } = terms[t]
    for (let j = 0; j < map.cols; j++) {
      const p0 = layout.start[j]
      const p1 = layout.start[j + 1]
      if (p1 === p0) {
        if (map.start[j + 1] > map.start[j]) throw new Error('layout misses an element the transform reads')
        continue
      }
      for (let q = map.start[j]; q < map.start[j + 1]; q++) {
        const o = map.idx[q]
        const so = primarySlot(spec, o)
        let best = Infinity
        let bestCt = 0
        let bestPartial = 0
        for (let p = p0; p < p1; p++) {
          const g = layout.pos[p]
          const c = Math.floor(g / S)
          const s = g - c * S
          const d = (((s - so) % S) + S) % S
          const f1 = Math.floor(d / step)
          const f2 = Math.floor((d - S) / step)
          for (let ci = 0; ci < 4; ci++) {
            const m = Math.min(M - 1, Math.max(0, ci === 0 ? f1 : ci === 1 ? f1 + 1 : ci === 2 ? f2 : f2 + 1))
            const k = centered(d - step * m, S)
            const score = Math.abs(k) * 2 + (k < 0 ? 1 : 0)
            if (score < best) {
              best = score
              bestCt = c
              bestPartial = (so + step * m) % S
            }
          }
          if (best === 0) break
        }
        const kAbs = best % 2 === 1 ? -(best - 1) / 2 : best / 2
        const kk = ((kAbs % S) + S) % S
        const key = (t * 1024 + bestCt) * S + kk
        let e = byKey.get(key)
        if (!e) {
          byKey.set(key, (e = { term: t, ct: bestCt, k: kk, acc: new Map() }))
          if (count + 2 * Math.sqrt(byKey.size) - 2 > abortAbove) return undefined
        }
        if (!keysOnly) e.acc.set(bestPartial, (e.acc.get(bestPartial) ?? 0) + map.val[q])
      }
    }
  }
  return collectDiagonals(byKey)
}

/** Baby step of rotation k (in [0, S)) for baby size g, taking k as a signed offset in (-S/2, S/2]. */
export function babyOf(k: number, g: number, S: number): number {
  const c = k > S / 2 ? k - S : k
  return ((c % g) + g) % g
}

/** Best baby step g for a diagonal set: rotations = distinct nonzero (k mod g) per input + distinct nonzero giants. */
export function chooseBabyStep(diags: readonly Diagonal[], S: number): { g: number; baby: number; giant: number } {
  let best = { g: 1, baby: 0, giant: Infinity }
  const cands = new Set<number>()
  for (let g = 1; g <= 64; g++) cands.add(g)
  for (let g = 128; g <= S; g *= 2) cands.add(g)
  for (const g of cands) {
    const babies = new Set<string>()
    const giants = new Set<number>()
    for (const d of diags) {
      const b = babyOf(d.k, g, S)
      if (b !== 0) babies.add(`${d.term}:${d.ct}:${b}`)
      const G = (d.k - b + S) % S
      if (G !== 0) giants.add(G)
    }
    if (babies.size + giants.size < best.baby + best.giant) best = { g, baby: babies.size, giant: giants.size }
  }
  return best
}

/** Relative cost weights used to pick among layouts (rotation = 1). */
export interface LayoutWeights {
  rotate: number
  mulPlain: number
  add: number
}

export const DEFAULT_WEIGHTS: LayoutWeights = { rotate: 1, mulPlain: 0.09, add: 0.01 }

export function transformCost(p: TransformPlan, w: LayoutWeights = DEFAULT_WEIGHTS): number {
  return (p.babyRotations + p.giantRotations + p.reduction.count) * w.rotate + p.diagonals.length * (w.mulPlain + w.add)
}

/** The rows r with local[r] >= 0 of a sparse matrix, renumbered to local[r]. */
export function rowPick(m: SparseCols, local: Int32Array, rows: number): SparseCols {
  const start = new Int32Array(m.cols + 1)
  const idx: number[] = []
  const val: number[] = []
  for (let j = 0; j < m.cols; j++) {
    for (let p = m.start[j]; p < m.start[j + 1]; p++)
      if (local[m.idx[p]] >= 0) {
        idx.push(local[m.idx[p]])
        val.push(m.val[p])
      }
    start[j + 1] = idx.length
  }
  return { rows, cols: m.cols, start, idx: Int32Array.from(idx), val: Float64Array.from(val) }
}

export function planTransform(terms: readonly TermInput[], spec: OutSpec, nOut: number, abortAbove = Infinity, keysOnly = false): TransformPlan | undefined {
  const S = terms[0].layout.S
  const cts = specCts(spec, nOut, S)
  if (cts > 1) {
    // one transform per output ciphertext over the rows it holds, renumbered in slot order
    const chunks: TransformPlan[] = []
    let cost = 0
    for (let c = 0; c < cts; c++) {
      const rows: number[] = []
      for (let r = 0; r < nOut; r++) if (Math.floor(primarySlot(spec, r) / S) === c) rows.push(r)
      const local = new Int32Array(nOut).fill(-1)
      rows.forEach((r, i) => (local[r] = i))
      const part = planTransform(
        terms.map((t) => ({ layout: t.layout, map: rowPick(t.map, local, rows.length) })),
        spec.kind === 'slots' ? { kind: 'slots', slots: Int32Array.from(rows, (r) => spec.slots[r] - c * S) } : spec,
        rows.length,
        abortAbove - cost,
        keysOnly,
      )
      if (!part) return undefined
      cost += part.babyRotations + part.giantRotations
      chunks.push(part)
    }
    return {
      spec,
      diagonals: chunks.flatMap((c) => c.diagonals),
      babyStep: chunks[0].babyStep,
      babyRotations: chunks.reduce((a, c) => a + c.babyRotations, 0),
      giantRotations: chunks.reduce((a, c) => a + c.giantRotations, 0),
      reduction: { step: S, count: 0 },
      chunks,
    }
  }
  const diagonals = placeDiagonals(terms, spec, nOut, abortAbove, keysOnly)
  if (!diagonals) return undefined
  const bs = chooseBabyStep(diagonals, S)
  return { spec, diagonals, babyStep: bs.g, babyRotations: bs.baby, giantRotations: bs.giant, reduction: specReduction(spec, S) }
}

/** Replication period of a layout: B for replicated(B), S otherwise. */
export function periodOf(l: Layout): number {
  return l.spec?.kind === 'replicated' ? l.spec.B : l.S
}

/**
 * Candidate output specs for n outputs in S slots, for inputs replicated with the given periods:
 * rows spread over the input's blocks (and over the whole ring), or a replicated output.
 */
export function candidateSpecs(n: number, S: number, periods: readonly number[] = []): OutSpec[] {
  if (n > S) return [{ kind: 'replicated', B: S }]
  let P = 1
  while (P < n) P *= 2
  const Bs = [...new Set([...periods, S, P, Math.min(S, 2 * P)])].filter((b) => b <= S).sort((a, b) => a - b)
  const out: OutSpec[] = []
  for (const B of Bs) {
    if (B >= n) out.push({ kind: 'replicated', B })
    const nb = S / B
    let R = 1
    while (R < Math.ceil(n / nb)) R *= 2
    for (const r of [R, 2 * R]) if (r <= B && specFits({ kind: 'blockRows', B, R: r }, n, S)) out.push({ kind: 'blockRows', B, R: r })
  }
  return out
}

/**
 * Cheapest transform over the candidate specs (ties favour replicated outputs, which help the next map).
 * `clean`: only layouts whose other slots hold replicas, not partial sums (inputs of high-degree
 * polynomials, where unbounded garbage could overflow the modulus). `keysOnly`: the chosen plan's
 * diagonals without their values (counts and costs only).
 */
export function bestTransform(terms: readonly TermInput[], nOut: number, w: LayoutWeights = DEFAULT_WEIGHTS, clean = false, batch = 1, keysOnly = false): TransformPlan {
  const S = terms[0].layout.S
  let best: TransformPlan | undefined
  let bestCost = Infinity
  for (const spec0 of candidateSpecs(nOut, S, terms.map((t) => periodOf(t.layout)))) {
    const spec = withBatch(spec0, batch, nOut)
    if (clean && spec.kind !== 'replicated') continue
    const p = planTransform(terms, spec, nOut, bestCost + 1, true)
    if (!p) continue
    const c = transformCost(p, w) - (spec.kind === 'replicated' ? 0.5 : 0)
    if (c < bestCost) {
      best = p
      bestCost = c
    }
  }
  if (!best) throw new SlotOverflowError(`no layout fits ${nOut} elements in ${S} slots`)
  return keysOnly ? best : planTransform(terms, best.spec, nOut)!
}

/**
 * The client's input layout for a first map m (rows = outputs): output o's t-th input goes to
 * ciphertext floor(t / nb), slot B (t mod nb) + o, so the map needs only diagonal 0 per ciphertext and
 * a reduction over the nb blocks (B = output block size). Undefined when it would need too many ciphertexts.
 */
export function im2colLayout(m: SparseCols, S: number, maxCts: number, batch = 1): { layout: Layout; spec: OutSpec } | undefined {
  let B = 1
  while (B < m.rows) B *= 2
  if (B > S) return undefined
  const nb = S / B
  const rowsOf: number[][] = Array.from({ length: m.rows }, () => [])
  for (let j = 0; j < m.cols; j++) for (let p = m.start[j]; p < m.start[j + 1]; p++) rowsOf[m.idx[p]].push(j)
  let maxNnz = 0
  for (const r of rowsOf) maxNnz = Math.max(maxNnz, r.length)
  const cts = Math.max(1, Math.ceil(maxNnz / nb))
  if (cts > maxCts) return undefined
  const lists: number[][] = Array.from({ length: m.cols }, () => [])
  const spec = withBatch({ kind: 'replicated', B }, batch, m.rows)
  for (let o = 0; o < m.rows; o++) {
    const ins = rowsOf[o]
    const so = primarySlot(spec, o)
    for (let t = 0; t < ins.length; t++) lists[ins[t]].push(Math.floor(t / nb) * S + B * (t % nb) + so)
  }
  const start = new Int32Array(m.cols + 1)
  const pos: number[] = []
  for (let j = 0; j < m.cols; j++) {
    lists[j].sort((a, b) => a - b)
    pos.push(...lists[j])
    start[j + 1] = pos.length
  }
  return { layout: { n: m.cols, S, cts, start, pos: Int32Array.from(pos) }, spec }
}

/** Plain layout: element i at slot i, replicated with the smallest power-of-two period that holds n (beyond S: over several ciphertexts). */
export function contiguousLayout(n: number, S: number, batch = 1): Layout {
  let B = 1
  while (B < n) B *= 2
  return layoutOfSpec(withBatch({ kind: 'replicated', B: Math.min(B, S) }, batch, n), n, S)
}

/** A compaction network: per (source, target) ciphertext pair, levels of masked rotations. */
export interface CompactionPlan {
  readonly groups: readonly { source: number; target: number; levels: TransformPlan[] }[]
  readonly cost: number
}

/** What a level costs beside its rotations and products (rotation = 1): its share of later refreshes. */
const LEVEL_WEIGHT = 2

/**
 * Move element i from position from[i] to to[i] (ct * S + slot) by a network of masked rotations.
 * Per (source, target) ciphertext pair, the displacement from[i] - to[i] less its minimum is written
 * in digits of r bits, least significant first; level j moves every element by its j-th digit (the
 * first level also by the minimum): one diagonal per digit value, one level. For an order-keeping
 * compaction no two elements meet; the positions are checked at every level, and r is chosen by
 * cost. Undefined when no r keeps the elements apart.
 */
export function compactionPlan(from: Int32Array, to: Int32Array, S: number, w: LayoutWeights = DEFAULT_WEIGHTS, groupOf?: Int32Array): CompactionPlan | undefined {
  // groups: (source ciphertext, target ciphertext, groupOf[i] < 64), each its own network
  const byPair = new Map<number, number[]>()
  for (let i = 0; i < from.length; i++) {
    const key = (Math.floor(from[i] / S) * 65536 + Math.floor(to[i] / S)) * 64 + (groupOf ? groupOf[i] : 0)
    const l = byPair.get(key)
    if (l) l.push(i)
    else byPair.set(key, [i])
  }
  const groups: { source: number; target: number; levels: TransformPlan[] }[] = []
  let cost = 0
  const seen = new Int32Array(S).fill(-1)
  let stamp = 0
  for (const [key, elems] of [...byPair].sort((a, b) => a[0] - b[0])) {
    const raw = elems.map((i) => (from[i] % S) - (to[i] % S))
    const base = Math.min(...raw)
    const d = raw.map((x) => x - base)
    const maxD = Math.max(...d)
    if (maxD >= S) return undefined
    const bits = Math.max(1, Math.ceil(Math.log2(maxD + 1)))
    let best: { levels: TransformPlan[]; cost: number } | undefined
    for (let r = 1; r <= Math.min(8, bits); r++) {
      const nLevels = Math.ceil(bits / r)
      const pos = elems.map((i) => from[i] % S)
      const levels: TransformPlan[] = []
      let ok = true
      for (let j = 0; j < nLevels && ok; j++) {
        const lo = j * r
        const byK = new Map<number, number[]>()
        stamp++
        for (let e = 0; e < elems.length; e++) {
          const dig = Math.floor(d[e] / 2 ** lo) % 2 ** r
          const move = dig * 2 ** lo + (j === 0 ? base : 0)
          const k = ((move % S) + S) % S
          const p = (((pos[e] - move) % S) + S) % S
          if (seen[p] === stamp) {
            ok = false
            break
          }
          seen[p] = stamp
          pos[e] = p
          const l = byK.get(k)
          if (l) l.push(p)
          else byK.set(k, [p])
        }
        if (!ok) break
        const diagonals: Diagonal[] = [...byK]
          .sort((a, b) => a[0] - b[0])
          .map(([k, slots]) => {
            slots.sort((a, b) => a - b)
            return { term: 0, ct: 0, k, slots, values: slots.map(() => 1) }
          })
        const bs = chooseBabyStep(diagonals, S)
        levels.push({ spec: { kind: 'replicated', B: S }, diagonals, babyStep: bs.g, babyRotations: bs.baby, giantRotations: bs.giant, reduction: { step: S, count: 0 } })
      }
      if (!ok) continue
      const c = levels.reduce((a, l) => a + transformCost(l, w) + LEVEL_WEIGHT, 0)
      if (!best || c < best.cost) best = { levels, cost: c }
    }
    if (!best) return undefined
    groups.push({ source: Math.floor(key / 64 / 65536), target: Math.floor(key / 64) % 65536, levels: best.levels })
    cost += best.cost
  }
  return { groups, cost }
}

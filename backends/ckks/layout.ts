/**
 * Slot layouts and linear transforms. A layout says in which slots (of which ciphertext) each element
 * of a tensor sits, possibly replicated. A linear map between layouts is compiled to plaintext
 * diagonals: out = reduce(sum_{c,k} P_{c,k} * rot(x_c, k)), where the optional reduction is a
 * rotate-and-sum with steps step, 2 step, ... that adds each output's partial slots. Diagonals are
 * grouped baby-step giant-step. Output layouts come in two families:
 *  - blockRows(B, R): output r at slot B floor(r / R) + r mod R, reduction step R over a block of B
 *    slots (the "hybrid" diagonal method, rows spread over blocks of a replicated input);
 *  - replicated(B): output r at slot r and r + B j for every j (reduction step B around the whole
 *    ring), so the next map can use the hybrid method.
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
  | { readonly kind: 'blockRows'; readonly B: number; readonly R: number }
  | { readonly kind: 'replicated'; readonly B: number }

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
  if (spec.kind === 'blockRows') return { step: spec.R, count: Math.round(Math.log2(spec.B / spec.R)) }
  return { step: spec.B, count: Math.round(Math.log2(S / spec.B)) }
}

export function primarySlot(spec: OutSpec, r: number): number {
  if (spec.kind === 'blockRows') return spec.B * Math.floor(r / spec.R) + (r % spec.R)
  return r
}

export function specFits(spec: OutSpec, n: number, S: number): boolean {
  if (spec.kind === 'blockRows') return spec.R <= spec.B && spec.B <= S && Math.ceil(n / spec.R) <= S / spec.B
  return n <= spec.B && spec.B <= S
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
  return { n, S, cts: 1, start, pos: Int32Array.from(pos), spec }
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

export function planTransform(terms: readonly TermInput[], spec: OutSpec, nOut: number, abortAbove = Infinity, keysOnly = false): TransformPlan | undefined {
  const diagonals = placeDiagonals(terms, spec, nOut, abortAbove, keysOnly)
  if (!diagonals) return undefined
  const S = terms[0].layout.S
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
 * polynomials, where unbounded garbage could overflow the modulus).
 */
export function bestTransform(terms: readonly TermInput[], nOut: number, w: LayoutWeights = DEFAULT_WEIGHTS, clean = false): TransformPlan {
  const S = terms[0].layout.S
  let best: TransformPlan | undefined
  let bestCost = Infinity
  for (const spec of candidateSpecs(nOut, S, terms.map((t) => periodOf(t.layout)))) {
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
  return planTransform(terms, best.spec, nOut)!
}

/**
 * The client's input layout for a first map m (rows = outputs): output o's t-th input goes to
 * ciphertext floor(t / nb), slot B (t mod nb) + o, so the map needs only diagonal 0 per ciphertext and
 * a reduction over the nb blocks (B = output block size). Undefined when it would need too many ciphertexts.
 */
export function im2colLayout(m: SparseCols, S: number, maxCts: number): { layout: Layout; spec: OutSpec } | undefined {
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
  for (let o = 0; o < m.rows; o++) {
    const ins = rowsOf[o]
    for (let t = 0; t < ins.length; t++) lists[ins[t]].push(Math.floor(t / nb) * S + B * (t % nb) + o)
  }
  const start = new Int32Array(m.cols + 1)
  const pos: number[] = []
  for (let j = 0; j < m.cols; j++) {
    lists[j].sort((a, b) => a - b)
    pos.push(...lists[j])
    start[j + 1] = pos.length
  }
  return { layout: { n: m.cols, S, cts, start, pos: Int32Array.from(pos) }, spec: { kind: 'replicated', B } }
}

/** Plain layout: element i at slot i, replicated with the smallest power-of-two period that holds n. */
export function contiguousLayout(n: number, S: number): Layout {
  let B = 1
  while (B < n) B *= 2
  if (B > S) throw new SlotOverflowError(`tensor of ${n} elements does not fit ${S} slots`)
  return layoutOfSpec({ kind: 'replicated', B }, n, S)
}

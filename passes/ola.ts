/**
 * OLA (optimized layerwise approximation) degree selection. Per activation layer and candidate
 * degree: a distribution-weighted least-squares fit (calibration histogram as the weight, widened by
 * the scale factor r), its error E_l(d) = drop in top-1 agreement with the original model on the
 * calibration data when only that layer is approximated, and its cost T_l(d) from a pluggable cost
 * model. A knapsack over layers (budget discretized in calibration samples) picks one degree per
 * layer minimizing the total cost with the summed error within budget; the joint choice is then
 * checked by running all approximations together: while it overshoots, the layer whose next degree
 * removes the most joint error per unit of cost is raised; while it has room (summed errors overstate
 * the joint error when layers flip the same samples), layers are lowered to cheaper measured
 * candidates, the largest saving first, as long as the joint error stays within budget. For robustness on unseen data a
 * sample counts as flipped when the original class's lead shrinks below OLA_KEEP of itself, and the
 * fits see the calibration density widened by r (more for MaxPool's polynomial signs). At low degrees
 * the per-channel Hermite fit is tried too and the better of the two kept.
 *
 * The per-layer runs reuse one cached full run: only the nodes downstream of the replaced layer are
 * evaluated again.
 */
import type { Graph, Node } from '../ir/graph.js'
import { bindInputs, interpret } from '../ir/interpret.js'
import { OPS } from '../ir/ops/index.js'
import { applyPoly, polyDepth, polyMuls, type PolyAttrs } from '../ir/ops/pi.js'
import { sizeOf, type Tensor } from '../ir/tensor.js'
import type { Activation } from './activations.js'
import type { ActivationStats } from './calibrate.js'
import { weightedFit } from './fit.js'
import { PassError } from './pass.js'

/** Cost of evaluating one activation layer's polynomial of degree d on `elements` values per sample. */
export interface CostModel {
  readonly name: string
  activation(degree: number, elements: number): number
}

/** Slots of one CKKS ciphertext at N = 16384. */
const SLOTS = 8192

/** Multiplicative depth plus non-scalar multiplications, per ciphertext the layer fills. */
export const depthMulCost: CostModel = {
  name: 'depth+muls',
  activation: (d, elements) => (polyDepth(d) + polyMuls(d)) * Math.ceil(elements / SLOTS),
}

export const OLA_DEGREES: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 24, 31, 40, 48, 63]

/** The scale factor r: the fit sees the calibration density of x / r (wider, for the tails). */
export const OLA_SCALE = 1.5

/** Extra widening for polynomial signs (MaxPool), which diverge fastest outside their interval. */
export const SIGN_SCALE = 1.33

/** Highest degree at which the extra fit families are tried (where the fit matters most for cost). */
const FAMILY_DEGREES = 4

/**
 * Default safety margin: a sample counts as flipped when its lead falls below 20% of the original.
 * On the six digits activation models and three perturbed copies of each, 0.2 kept every test
 * accuracy within 1.41 points at ola:0.01; without a margin one copy lost 1.81 (bench/approx).
 */
const OLA_KEEP = 0.2

/** Distribution-weighted least-squares fit of one layer at degree d: a one-row Chebyshev Poly. */
export function olaPoly(act: Activation, st: ActivationStats, degree: number, scale = OLA_SCALE): PolyAttrs {
  const r = act.target === 'Sign' ? scale * SIGN_SCALE : scale
  const { lo, hi, counts } = st.histogram
  const width = (hi - lo) / counts.length
  const x = Float64Array.from(counts, (_, i) => r * (lo + (i + 0.5) * width))
  let a = r * (lo - width)
  let b = r * (hi + width)
  if (!(b > a)) [a, b] = [lo - 1, hi + 1]
  const coeffs = weightedFit(x, act.fn(x), Float64Array.from(counts), a, b, degree)
  return { basis: 'chebyshev', axis: 1, coeffs: [coeffs], shift: [(a + b) / 2], scale: [(b - a) / 2], of: act.target, interval: [a, b] }
}

/** What a polynomial does to a layer: y = p(x), or x p(x) when p stands for sign (Abs). */
export function replaceWith(act: Activation, p: PolyAttrs): (x: Tensor, out: Tensor['shape']) => Tensor {
  return (x, shape) => {
    const type = { dtype: x.dtype, shape }
    if (act.node.op === 'PartialRelu') return OPS.PartialRelu.eval([x], { ...act.node.attrs, poly: p }, type)
    const y = applyPoly(p, x, type)
    if (act.target === 'Sign') for (let i = 0; i < y.length; i++) y[i] *= x.data[i]
    return { ...type, data: y }
  }
}

type Replace = (x: Tensor, shape: Tensor['shape']) => Tensor

/** Cached full run on the calibration data; replays only what a replacement changes. */
export class Replay {
  readonly g: Graph
  readonly values: Map<string, Tensor>
  readonly top1: Int32Array
  /** Per sample: original top-1 logit minus the runner-up. */
  readonly margin: Float64Array
  private readonly consumers = new Map<string, number[]>()
  private readonly index = new Map<string, number>()

  constructor(g: Graph, calib: Tensor) {
    try {
      this.g = bindInputs(g, [calib])
    } catch (e) {
      throw new PassError(`the calibration data does not fit the model (${(e as Error).message}); OLA and the ReLU budget run it as one batch, so the batch dimension must be symbolic`)
    }
    this.g.nodes.forEach((n, i) => {
      this.index.set(n.name, i)
      for (const x of n.inputs) if (x) this.consumers.set(x, [...(this.consumers.get(x) ?? []), i])
    })
    this.values = interpret(this.g, [calib], { keepAll: true })
    const out = this.values.get(this.g.outputs[0])!
    this.top1 = argmax(out)
    this.margin = margins(out, this.top1)
  }

  private evalNode(n: Node, get: (name: string) => Tensor): Tensor {
    return OPS[n.op].eval(
      n.inputs.map((x) => (x ? get(x) : (undefined as unknown as Tensor))),
      n.attrs,
      n.type,
    )
  }

  /** The graph output with some nodes' values replaced by functions of their (new) first input. */
  run(replace: ReadonlyMap<string, Replace>): Tensor {
    return this.evaluate(replace).get(this.g.outputs[0])!
  }

  /**
   * Every value with some nodes replaced by functions of their (new) first input. Only `changed`
   * (default: the replaced nodes) and what depends on them are evaluated again; the rest come from
   * `base` (default: the original run), which must already hold `replace`'s effect elsewhere.
   */
  evaluate(replace: ReadonlyMap<string, Replace>, changed: Iterable<string> = replace.keys(), base: ReadonlyMap<string, Tensor> = this.values): Map<string, Tensor> {
    const out = new Map(base)
    const dirty = new Uint8Array(this.g.nodes.length)
    for (const name of changed) dirty[this.index.get(name)!] = 1
    for (let i = 0; i < this.g.nodes.length; i++) {
      if (!dirty[i]) continue
      const n = this.g.nodes[i]
      const r = replace.get(n.name)
      out.set(n.name, r ? r(out.get(n.inputs[0])!, n.type.shape) : this.evalNode(n, (x) => out.get(x)!))
      for (const c of this.consumers.get(n.name) ?? []) dirty[c] = 1
    }
    return out
  }

  /**
   * Samples whose top-1 differs from the original model's; with `keep` > 0 also those where the
   * original class leads by less than `keep` times its original lead (a safety margin for unseen data).
   */
  flips(out: Tensor, keep = 0): number {
    const m = margins(out, this.top1)
    let f = 0
    for (let i = 0; i < m.length; i++) if (m[i] <= 0 || m[i] < keep * this.margin[i]) f++
    return f
  }
}

/** Top-1 class per sample (the sign for a single logit). */
export function argmax(t: Tensor): Int32Array {
  const n = t.shape[0] ?? 1
  const k = sizeOf(t.shape) / n
  const out = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    if (k === 1) {
      out[i] = t.data[i] > 0 ? 1 : 0
      continue
    }
    let best = 0
    for (let j = 1; j < k; j++) if (t.data[i * k + j] > t.data[i * k + best]) best = j
    out[i] = best
  }
  return out
}

/** Fraction of samples whose top-1 class is the same in both outputs. */
export function top1Agreement(a: Tensor, b: Tensor): number {
  const [x, y] = [argmax(a), argmax(b)]
  return x.filter((v, i) => v === y[i]).length / Math.max(1, x.length)
}

/** Per sample: logit of class `cls` minus the largest other logit (for one logit: its signed value). */
export function margins(t: Tensor, cls: Int32Array): Float64Array {
  const n = cls.length
  const k = sizeOf(t.shape) / n
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    if (k === 1) {
      out[i] = cls[i] === 1 ? t.data[i] : -t.data[i]
      continue
    }
    let other = -Infinity
    for (let j = 0; j < k; j++) if (j !== cls[i]) other = Math.max(other, t.data[i * k + j])
    out[i] = t.data[i * k + cls[i]] - other
  }
  return out
}

export interface OlaCandidate {
  degree: number
  /** Flipped calibration samples when only this layer is approximated. */
  flips: number
  cost: number
}

export interface OlaChoice {
  degree: number
  poly: PolyAttrs
  /** E_l(d) as a fraction of the calibration samples. */
  error: number
  cost: number
  candidates: OlaCandidate[]
}

export interface OlaOptions {
  budget: number
  degrees?: readonly number[]
  costModel?: CostModel
  scale?: number
  /** Further fits tried beside the weighted least squares at degrees up to FAMILY_DEGREES (the better one is kept). */
  fits?: readonly ((act: Activation, st: ActivationStats, degree: number) => PolyAttrs)[]
  /** Safety margin (see Replay.flips). */
  keep?: number
  log?: (message: string) => void
}

export interface OlaResult {
  choices: Map<string, OlaChoice>
  /** Flips of all approximations together on the calibration data, as a fraction. */
  jointError: number
  totalCost: number
}

/** Knapsack: one option per layer, minimum total cost with total flips <= units. */
export function knapsack(options: readonly (readonly { flips: number; cost: number }[])[], units: number): number[] | undefined {
  let dp: { cost: number; pick: number[] }[] = [{ cost: 0, pick: [] }]
  for (let u = 1; u <= units; u++) dp.push(dp[0])
  for (const opts of options) {
    const next = Array.from({ length: units + 1 }, () => ({ cost: Infinity, pick: [] as number[] }))
    for (let u = 0; u <= units; u++) {
      if (!Number.isFinite(dp[u].cost)) continue
      opts.forEach((o, k) => {
        const v = u + o.flips
        if (v <= units && dp[u].cost + o.cost < next[v].cost) next[v] = { cost: dp[u].cost + o.cost, pick: [...dp[u].pick, k] }
      })
    }
    dp = next
  }
  let best: { cost: number; pick: number[] } | undefined
  for (const e of dp) if (Number.isFinite(e.cost) && (!best || e.cost < best.cost)) best = e
  return best?.pick
}

/** Choose a degree per layer (see the module doc). */
export function ola(g: Graph, layers: readonly { act: Activation; stats: ActivationStats }[], calib: Tensor, opts: OlaOptions): OlaResult {
  const degrees = opts.degrees ?? OLA_DEGREES
  const cost = opts.costModel ?? depthMulCost
  const keep = opts.keep ?? OLA_KEEP
  const replay = new Replay(g, calib)
  const N = replay.top1.length
  const candidate = (l: number, d: number): OlaCandidate & { poly: PolyAttrs } => {
    const { act, stats } = layers[l]
    let best: (OlaCandidate & { poly: PolyAttrs }) | undefined
    for (const fit of [(a: Activation, s: ActivationStats, deg: number) => olaPoly(a, s, deg, opts.scale), ...(d <= FAMILY_DEGREES ? (opts.fits ?? []) : [])]) {
      const poly = fit(act, stats, d)
      const flips = replay.flips(replay.run(new Map([[act.node.name, replaceWith(act, poly)]])), keep)
      if (!best || flips < best.flips) best = { degree: d, flips, cost: cost.activation(d, sizeOf(act.node.type.shape.slice(1))), poly }
    }
    return best!
  }
  const options: (OlaCandidate & { poly: PolyAttrs })[][] = []
  for (const [l, { act }] of layers.entries()) {
    const elements = sizeOf(act.node.type.shape.slice(1))
    const cands: (OlaCandidate & { poly: PolyAttrs })[] = []
    // a degree costing as much as a higher one is never worth measuring
    for (const d of degrees.filter((d) => !degrees.some((e) => e > d && cost.activation(e, elements) <= cost.activation(d, elements)))) {
      cands.push(candidate(l, d))
      if (cands[cands.length - 1].flips === 0) break
    }
    options.push(cands)
    opts.log?.(`ola: layer ${l + 1}/${layers.length} ${act.node.name}: ${cands.map((c) => `d${c.degree}:${c.flips}`).join(' ')}`)
  }
  const allowed = Math.floor(opts.budget * N + 1e-9)
  const out = g.outputs[0]
  const replacing = (chosen: readonly { poly: PolyAttrs }[]) => new Map(layers.map(({ act }, l) => [act.node.name, replaceWith(act, chosen[l].poly)]))
  // the current joint run; a change in one layer re-evaluates only what lies downstream of it
  let jointValues = new Map<string, Tensor>()
  const jointRun = (chosen: readonly { poly: PolyAttrs }[], changed?: number) =>
    changed === undefined ? replay.evaluate(replacing(chosen)) : replay.evaluate(replacing(chosen), [layers[changed].act.node.name], jointValues)
  const flipsOf = (values: ReadonlyMap<string, Tensor>) => replay.flips(values.get(out)!, keep)
  const pick = knapsack(options, allowed) ?? options.map((o) => o.reduce((b, c, k) => (c.flips < o[b].flips ? k : b), 0))
  let chosen = pick.map((k, l) => options[l][k])
  jointValues = jointRun(chosen)
  let joint = flipsOf(jointValues)
  opts.log?.(`ola: budget ${allowed}/${N} samples: degrees ${chosen.map((c) => c.degree).join(',')}, summed error ${chosen.reduce((s, c) => s + c.flips, 0)}, joint ${joint}`)
  // The layers interact beyond their summed errors: raise one layer's degree at a time, the one that
  // removes the most joint error per unit of cost, until the joint error fits the budget.
  const raised = (l: number) => {
    const d = degrees.find((v) => v > chosen[l].degree)
    if (d === undefined) return undefined
    const known = options[l].find((c) => c.degree === d)
    if (known) return known
    const c = candidate(l, d)
    options[l].push(c)
    return c
  }
  const saving = (l: number) => chosen[l].cost - Math.min(...options[l].map((c) => c.cost))
  while (joint > allowed) {
    let best: { l: number; c: OlaCandidate & { poly: PolyAttrs }; values: Map<string, Tensor>; j: number; gain: number } | undefined
    for (let l = 0; l < layers.length; l++) {
      const c = raised(l)
      if (!c) continue
      const values = jointRun(chosen.map((o, k) => (k === l ? c : o)), l)
      const j = flipsOf(values)
      const gain = (joint - j) / Math.max(1e-9, c.cost - chosen[l].cost)
      if (j < joint && (!best || gain > best.gain)) best = { l, c, values, j, gain }
    }
    if (!best) break
    chosen = chosen.map((o, k) => (k === best!.l ? best!.c : o))
    jointValues = best.values
    joint = best.j
    opts.log?.(`ola: raised ${layers[best.l].act.node.name} to degree ${best.c.degree}: joint ${joint}`)
  }
  // The knapsack sums the layers' errors, which overstates the joint error when their flips fall on
  // the same samples: lower layers to cheaper measured candidates, the largest possible saving first
  // and the cheapest candidate that keeps the joint error within budget, until none can be lowered.
  for (let lowered = joint <= allowed; lowered; ) {
    lowered = false
    const order = layers.map((_, l) => l).sort((a, b) => saving(b) - saving(a) || a - b)
    for (const l of order) {
      for (const c of options[l].filter((c) => c.cost < chosen[l].cost && c.flips <= allowed).sort((a, b) => a.cost - b.cost)) {
        const next = chosen.map((o, k) => (k === l ? c : o))
        const values = jointRun(next, l)
        const j = flipsOf(values)
        if (j > allowed) continue
        opts.log?.(`ola: lowered ${layers[l].act.node.name} to degree ${c.degree}: joint ${j}`)
        chosen = next
        jointValues = values
        joint = j
        lowered = true
        break
      }
    }
  }
  const choices = new Map<string, OlaChoice>()
  layers.forEach(({ act }, l) => {
    const c = chosen[l]
    choices.set(act.node.name, { degree: c.degree, poly: c.poly, error: c.flips / N, cost: c.cost, candidates: options[l].map(({ degree, flips, cost }) => ({ degree, flips, cost })) })
  })
  if (joint > allowed) opts.log?.(`ola: the budget is not met: ${joint} of ${N} calibration samples disagree`)
  return { choices, jointError: joint / N, totalCost: chosen.reduce((s, c) => s + c.cost, 0) }
}

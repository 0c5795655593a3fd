/**
 * OLA (optimized layerwise approximation) degree selection. Per activation layer and candidate
 * degree: a distribution-weighted least-squares fit (calibration histogram as the weight, widened by
 * the scale factor r, over the calibrated range plus 5% on each side, plus a small share of the
 * weight spread over that interval so the tails stay bounded), its
 * error E_l(d) = the expected accuracy lost on the calibration data when only that layer is
 * approximated (each sample whose top-1 changes weighted by the original model's softmax gap between
 * its top two classes, so that near-ties, which any perturbation flips and which are right half the
 * time anyway, weigh almost nothing), its consumption C_l(d) (the same weights times the share of
 * each sample's lead the change uses up: it sees the small changes that compound over many layers),
 * and its cost T_l(d) from a pluggable cost model. A knapsack over layers (summed E within the
 * budget, in 1/32 samples) minimizes the summed T + lambda C; the smallest lambda on a ladder whose
 * choice, run jointly, stays within budget is kept (lambda 0 is OLA's plain knapsack). Then, while
 * the joint choice overshoots, the layer whose next degree removes the most joint error per unit of
 * cost is raised; while it has room (summed errors overstate the joint error when layers flip the
 * same samples), layers are lowered to cheaper measured candidates, the largest saving first, as
 * long as the joint error stays within budget. For robustness on unseen data a sample counts as
 * flipped when the original class's lead shrinks below OLA_KEEP of itself. At low degrees the
 * per-channel Hermite fit is tried too and the better of the two kept.
 *
 * A layer's degree walk stops at a negligible consumption (budget / 2L) or when PLATEAU feasible
 * degrees in a row do not lower it by a tenth. The per-layer runs reuse one cached full run: only the
 * nodes downstream of the replaced layer are evaluated again; on big networks an evenly strided
 * subset of the calibration samples is replayed (OLA_ELEMENTS; the joint runs see more,
 * OLA_JOINT_ELEMENTS), the statistics for the fits still come from all of them.
 */
import type { Graph, Node } from '../ir/graph.js'
import { bindInputs, constantInputs, evalNode, interpret, type Accelerator } from '../ir/interpret.js'
import { OPS } from '../ir/ops/index.js'
import { applyPoly, polyDepth, polyMuls, type PolyAttrs } from '../ir/ops/pi.js'
import { sizeOf, type Tensor } from '../ir/tensor.js'
import type { Activation } from './activations.js'
import type { ActivationStats } from './calibrate.js'
import { fitInterval, weightedFit } from './fit.js'
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

/**
 * The scale factor r: the fit sees the calibration density of x / r (wider, for the tails). 1: the
 * weight OLA_TAIL spreads over the interval bounds the tails, and widening costs precision in the
 * bulk (fmnist32/resnet20, uniform degree 15, 300 test images: 90.3% at r = 1, 88.7% at r = 1.5).
 */
export const OLA_SCALE = 1

/**
 * Share of the fit's weight spread evenly over the interval, so that the polynomial stays bounded
 * where the calibration density is nearly zero. Without it, fits on fmnist32/resnet20 at degree 31
 * and 63 were off by 4e4 and 6e7 inside their own intervals (a rare test input then wrecks the
 * logits); with 1e-3 the same degrees stayed within 17 (a tenth of a percent of the weight costs little in
 * the bulk; 1e-4 cost 5 points of test accuracy at uniform degree 8).
 */
export const OLA_TAIL = 1e-3

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

/**
 * Distribution-weighted least-squares fit of one layer at degree d over the calibrated range widened
 * by `margin` of its width on each side (the range fits' 5%): a one-row Chebyshev Poly.
 */
export function olaPoly(act: Activation, st: ActivationStats, degree: number, scale = OLA_SCALE, tail = OLA_TAIL, margin = 0.05): PolyAttrs {
  const r = act.target === 'Sign' ? scale * SIGN_SCALE : scale
  const { lo, hi, counts } = st.histogram
  const width = (hi - lo) / counts.length
  // unseen data reaches a little past the calibrated extremes, where a high degree diverges fast
  const [a0, b0] = fitInterval({ min: lo, max: hi }, margin)
  const [a, b] = [r * a0, r * b0]
  // the widened density at the bin centres, plus `tail` of the mass spread evenly over [a, b]
  const total = counts.reduce((s, c) => s + c, 0) || 1
  const M = counts.length + 2
  const x = new Float64Array(counts.length + M)
  const w = new Float64Array(counts.length + M)
  counts.forEach((c, i) => {
    x[i] = r * (lo + (i + 0.5) * width)
    w[i] = ((1 - tail) * c) / total
  })
  for (let i = 0; i < M; i++) {
    x[counts.length + i] = a + ((b - a) * (i + 0.5)) / M
    w[counts.length + i] = tail / M
  }
  const coeffs = weightedFit(x, act.fn(x), w, a, b, degree)
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
  /**
   * Per sample: the original model's softmax probability of its top-1 class minus the runner-up's
   * (for one logit, |2 sigmoid - 1|): the expected accuracy a flip of that sample costs when the
   * original probabilities stand for the unknown labels. Near-ties weigh almost nothing.
   */
  readonly weight: Float64Array
  private readonly consumers = new Map<string, number[]>()
  private readonly index = new Map<string, number>()
  private readonly constant: Map<string, boolean[]>

  constructor(g: Graph, calib: Tensor, private readonly accel?: Accelerator) {
    try {
      this.g = bindInputs(g, [calib])
    } catch (e) {
      throw new PassError(`the calibration data does not fit the model (${(e as Error).message}); OLA and the ReLU budget run it as one batch, so the batch dimension must be symbolic`)
    }
    this.g.nodes.forEach((n, i) => {
      this.index.set(n.name, i)
      for (const x of n.inputs) if (x) this.consumers.set(x, [...(this.consumers.get(x) ?? []), i])
    })
    this.constant = constantInputs(this.g)
    this.values = interpret(this.g, [calib], { keepAll: true, accel })
    const out = this.values.get(this.g.outputs[0])!
    this.top1 = argmax(out)
    this.margin = margins(out, this.top1)
    this.weight = confidenceGaps(out, this.top1).map((w) => Math.min(1, w / TIE_GAP))
  }

  private evalNode(n: Node, get: (name: string) => Tensor): Tensor {
    return evalNode(n, n.inputs.map((x) => (x ? get(x) : (undefined as unknown as Tensor))), this.accel, this.constant.get(n.name))
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

  /**
   * The share of each sample's room that a change uses up, weighted as `loss` and summed: the room
   * is the lead a sample may lose before `flips` counts it ((1 - keep) times its original lead); a
   * sample counts min(1, lead lost / room), so a counted flip counts 1 and `consumption >= loss`.
   * Where layers' effects on the logits add up, the joint loss is at most the sum of their
   * consumptions; unlike flips it sees the small changes that compound over many layers.
   */
  consumption(out: Tensor, keep = 0): number {
    const m = margins(out, this.top1)
    let f = 0
    for (let i = 0; i < m.length; i++) {
      const room = (1 - keep) * this.margin[i]
      const lost = m[i] <= 0 || m[i] < keep * this.margin[i] ? 1 : room > 0 ? Math.max(0, this.margin[i] - m[i]) / room : 0
      f += this.weight[i] * Math.min(1, lost)
    }
    return f
  }

  /** The flipped samples as `flips` counts them, each weighted by its `weight` (expected samples lost). */
  loss(out: Tensor, keep = 0): number {
    const m = margins(out, this.top1)
    let f = 0
    for (let i = 0; i < m.length; i++) if (m[i] <= 0 || m[i] < keep * this.margin[i]) f += this.weight[i]
    return f
  }
}

/** Per sample: softmax probability of class `cls` minus the largest other one (one logit: |2 sigmoid - 1|). */
export function confidenceGaps(t: Tensor, cls: Int32Array): Float64Array {
  const n = cls.length
  const k = sizeOf(t.shape) / n
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    if (k === 1) {
      out[i] = Math.abs(2 / (1 + Math.exp(-t.data[i])) - 1)
      continue
    }
    let max = -Infinity
    for (let j = 0; j < k; j++) max = Math.max(max, t.data[i * k + j])
    let z = 0
    let other = 0
    for (let j = 0; j < k; j++) {
      const e = Math.exp(t.data[i * k + j] - max)
      z += e
      if (j !== cls[i]) other = Math.max(other, e)
    }
    out[i] = (Math.exp(t.data[i * k + cls[i]] - max) - other) / z
  }
  return out
}

/** Softmax gap below which a sample counts as a near-tie: its flip weighs gap / TIE_GAP (see Replay.weight). */
export const TIE_GAP = 0.1

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
  /**
   * Flipped calibration samples (of those OLA replays) when only this layer is approximated; where
   * the loss exceeds the budget, counted only up to the chunk that exceeds it (a lower bound).
   */
  flips: number
  /** The same flips weighted by the samples' confidence gaps (Replay.weight): expected samples lost. */
  loss: number
  /** Replay.consumption of the same runs (>= loss): the error the knapsack sums. */
  consumption: number
  cost: number
}

export interface OlaChoice {
  degree: number
  poly: PolyAttrs
  /** E_l(d): the candidate's loss as a fraction of the replayed calibration samples. */
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
  /** Calibration samples replayed (default: as many as OLA_ELEMENTS allows, evenly strided). */
  samples?: number
  /** Calibration samples of the joint runs (default: as many as OLA_JOINT_ELEMENTS allows, at least `samples`). */
  jointSamples?: number
  log?: (message: string) => void
  /** Faster kernels for the replays (see Accelerator in ir/interpret.ts). */
  accel?: Accelerator
}

export interface OlaResult {
  choices: Map<string, OlaChoice>
  /** Loss of all approximations together on the joint runs' calibration samples, as a fraction. */
  jointError: number
  totalCost: number
  /** Calibration samples replayed by the per-layer walks. */
  samples: number
  /** Calibration samples of the joint runs (jointError's denominator). */
  jointSamples: number
}

/**
 * Activation values (summed over the layers, per sample) times samples that OLA replays: 2^24 keeps
 * every digits calibration set whole (resnet8: 300 samples) and takes 89 of fmnist32/resnet20's
 * (188,416 ReLU inputs per image), where one replay of the first layer's cone takes about 4 s.
 */
export const OLA_ELEMENTS = 1 << 24

/**
 * The same for the joint runs of all layers' choices together: fmnist32/resnet20 356 of 512 samples
 * (a budget of 3.56 samples at 1%, where 89 gave 0.89: its choice there lost 4.6 points of test
 * accuracy at a joint loss of 0.42 of the 89).
 */
export const OLA_JOINT_ELEMENTS = 1 << 26

/** Activation values per replayed chunk of samples (see ola): fmnist32/resnet20 in chunks of 22, digits whole. */
export const OLA_CHUNK_ELEMENTS = 1 << 22

/** Knapsack resolution: units per calibration sample (whole flips stay exact). */
const UNITS = 32

/**
 * Weights of consumption against cost the selection tries (lambda, in units of the most expensive
 * choice's total cost per calibration sample): the knapsack bounds the summed flips, which on a deep
 * network miss the small changes that compound over many layers; a larger lambda buys degrees whose
 * changes use less of the samples' room. The joint run decides: the smallest lambda within budget.
 */
const LADDER = [0, ...Array.from({ length: 13 }, (_, k) => 2 ** (k - 4))]

/** A layer's degree walk stops after this many measured degrees in a row within the budget that do not lower its best consumption by a tenth (with losses: 4 cost cnn_bn_relu_maxpool 1 point of digits test accuracy). */
const PLATEAU = 5

/** Rows `idx` of a tensor along axis 0. */
function pickRows(t: Tensor, idx: readonly number[]): Tensor {
  const inner = sizeOf(t.shape.slice(1))
  const data = new (t.data.constructor as Float64ArrayConstructor)(idx.length * inner)
  idx.forEach((r, k) => data.set(t.data.subarray(r * inner, (r + 1) * inner), k * inner))
  return { ...t, shape: [idx.length, ...t.shape.slice(1)], data } as Tensor
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
export function ola(g: Graph, layers: readonly { act: Activation; stats: ActivationStats }[], calib0: Tensor, opts: OlaOptions): OlaResult {
  const degrees = opts.degrees ?? OLA_DEGREES
  const cost = opts.costModel ?? depthMulCost
  const keep = opts.keep ?? OLA_KEEP
  const total = calib0.shape[0]
  const perSample = layers.reduce((s, { act }) => s + sizeOf(act.node.type.shape.slice(1)), 0)
  const n = Math.max(1, Math.min(total, opts.samples ?? Math.floor(OLA_ELEMENTS / Math.max(1, perSample))))
  const calib = n < total ? pickRows(calib0, Array.from({ length: n }, (_, i) => Math.floor((i * total) / n))) : calib0
  if (n < total) opts.log?.(`ola: replaying ${n} of the ${total} calibration samples (evenly strided; OLA_ELEMENTS)`)
  // the samples in chunks, replayed one after another: a candidate stops at the chunk where its loss
  // passes the budget (it can never be chosen), so hopeless low degrees cost a fraction of a replay
  const parts: Replay[] = []
  const chunk = Math.max(1, Math.floor(OLA_CHUNK_ELEMENTS / Math.max(1, perSample)))
  for (let from = 0; from < n; from += chunk) parts.push(from === 0 && chunk >= n ? new Replay(g, calib, opts.accel) : new Replay(g, pickRows(calib, Array.from({ length: Math.min(chunk, n - from) }, (_, i) => from + i)), opts.accel))
  const N = n
  const allowed = opts.budget * N
  const within = (loss: number) => loss <= allowed + 1e-9
  // the joint runs see more samples than the per-layer walks (they are few, and a budget of a
  // fraction of a sample cannot tell a choice that generalizes from one that fits the replayed set)
  const M = Math.max(n, Math.min(total, opts.jointSamples ?? Math.floor(OLA_JOINT_ELEMENTS / Math.max(1, perSample))))
  const jointParts: Replay[] = []
  if (M === n) jointParts.push(...parts)
  else {
    const rowsM = Array.from({ length: M }, (_, i) => Math.floor((i * total) / M))
    for (let from = 0; from < M; from += chunk) jointParts.push(new Replay(g, pickRows(calib0, rowsM.slice(from, from + chunk)), opts.accel))
    opts.log?.(`ola: joint runs on ${M} of the ${total} calibration samples (OLA_JOINT_ELEMENTS)`)
  }
  const jointAllowed = opts.budget * M
  const withinJoint = (loss: number) => loss <= jointAllowed + 1e-9
  // a layer whose consumption is this small takes a negligible share of the budget: its walk stops;
  // a candidate whose loss alone passes the budget can never be chosen: its replay stops at the chunk that shows it
  const negligible = allowed / (2 * Math.max(1, layers.length))
  type Cand = OlaCandidate & { poly: PolyAttrs }
  const candidate = (l: number, d: number): Cand => {
    const { act, stats } = layers[l]
    let best: Cand | undefined
    for (const fit of [(a: Activation, s: ActivationStats, deg: number) => olaPoly(a, s, deg, opts.scale), ...(d <= FAMILY_DEGREES ? (opts.fits ?? []) : [])]) {
      const poly = fit(act, stats, d)
      const replace = new Map([[act.node.name, replaceWith(act, poly)]])
      let loss = 0
      let flips = 0
      let consumption = 0
      for (const part of parts) {
        const out = part.run(replace)
        loss += part.loss(out, keep)
        flips += part.flips(out, keep)
        consumption += part.consumption(out, keep)
        if (!within(loss)) break
      }
      // a fit whose loss passed the budget stopped early (its consumption is partial): a feasible one wins
      if (!best || (within(loss) && (!within(best.loss) || consumption < best.consumption)) || (!within(best.loss) && loss < best.loss)) best = { degree: d, flips, loss, consumption, cost: cost.activation(d, sizeOf(act.node.type.shape.slice(1))), poly }
    }
    return best!
  }
  const options: Cand[][] = []
  const walkStart = performance.now()
  for (const [l, { act }] of layers.entries()) {
    const elements = sizeOf(act.node.type.shape.slice(1))
    const cands: Cand[] = []
    let best = Infinity
    let stale = 0
    // a degree costing as much as a higher one is never worth measuring
    for (const d of degrees.filter((d) => !degrees.some((e) => e > d && cost.activation(e, elements) <= cost.activation(d, elements)))) {
      const c = candidate(l, d)
      cands.push(c)
      if (c.consumption <= negligible) break
      // the consumption left is what any degree costs (near-ties, a sign's zero crossing): higher degrees only cost more
      if (within(c.loss)) {
        stale = c.consumption < 0.9 * best ? 0 : stale + 1
        best = Math.min(best, c.consumption)
      }
      if (stale >= PLATEAU) break
    }
    options.push(cands)
    // one line per layer, in words: the cheapest degree whose loss (calibration samples whose top-1
    // flips when only this layer is approximated, weighted) is within the budget, and the degrees tried
    const elapsed = (performance.now() - walkStart) / 1000
    const left = layers.length - l - 1
    const ok = cands.find((c) => within(c.loss))
    const lowest = cands.reduce((b, c) => (c.loss < b.loss ? c : b), cands[0])
    opts.log?.(
      `ola: layer ${l + 1} of ${layers.length} (${act.node.name}, ${elements} elements): ` +
        (ok ? `lowest degree within the budget ${ok.degree} (loss ${ok.loss.toFixed(2)} of ${allowed.toFixed(2)} samples allowed)` : `no degree within the budget (least loss: degree ${lowest.degree}, ${lowest.loss.toFixed(2)} of ${allowed.toFixed(2)} samples allowed)`) +
        `; degrees tried ${cands.map((c) => c.degree).join(',')}; ${elapsed.toFixed(1)} s so far${left > 0 ? `, est. ${((elapsed / (l + 1)) * left).toFixed(1)} s for the ${left} layer(s) left` : ''}`,
    )
  }
  const out = g.outputs[0]
  const replacing = (chosen: readonly { poly: PolyAttrs }[]) => new Map(layers.map(({ act }, l) => [act.node.name, replaceWith(act, chosen[l].poly)]))
  // A choice run jointly: its values and loss. A change in one layer (`changed`) re-evaluates only what
  // lies downstream of it in the current joint run; past `limit` the run stops at the chunk that shows it.
  let jointValues: Map<string, Tensor>[] = []
  const jointRun = (chosen: readonly { poly: PolyAttrs }[], changed?: number, limit = Infinity): { values: Map<string, Tensor>[]; j: number } | undefined => {
    const values: Map<string, Tensor>[] = []
    let j = 0
    for (const [k, part] of jointParts.entries()) {
      values.push(changed === undefined ? part.evaluate(replacing(chosen)) : part.evaluate(replacing(chosen), [layers[changed].act.node.name], jointValues[k]))
      j += part.loss(values[k].get(out)!, keep)
      if (j > limit + 1e-9) return undefined
    }
    return { values, j }
  }
  // the knapsack on the summed losses, each degree priced at its cost plus lambda times its consumption
  const scale = layers.reduce((s, _, l) => s + Math.max(...options[l].map((c) => c.cost)), 0) / Math.max(1, N)
  const pickAt = (lambda: number): Cand[] => {
    const pick = knapsack(options.map((o) => o.map((c) => ({ flips: Math.ceil(c.loss * UNITS - 1e-6), cost: c.cost + lambda * c.consumption }))), Math.floor(allowed * UNITS + 1e-9))
    return pick ? pick.map((k, l) => options[l][k]) : options.map((o) => o.reduce((b, c) => (c.loss < b.loss || (c.loss === b.loss && c.consumption < b.consumption) ? c : b)))
  }
  const tried = new Map<number, { chosen: Cand[]; joint: number }>()
  const tryRung = (k: number) => {
    const hit = tried.get(k)
    if (hit) return hit
    const chosen = pickAt(scale * LADDER[k])
    // (the joint values are not kept per rung: on fmnist32/resnet20 one run's values take hundreds of MB)
    const r = { chosen, joint: jointRun(chosen)!.j }
    tried.set(k, r)
    opts.log?.(`ola: selection at lambda ${LADDER[k]} (weight of consumption against cost): degrees ${chosen.map((c) => c.degree).join(',')}, cost ${chosen.reduce((s, c) => s + c.cost, 0).toFixed(0)} (${cost === depthMulCost ? 'depth and multiplications' : 'backend cost model'}), summed consumption ${chosen.reduce((s, c) => s + c.consumption, 0).toFixed(2)}, joint loss ${r.joint.toFixed(2)} of ${jointAllowed.toFixed(2)} samples allowed`)
    return r
  }
  // the cheapest rung (lambda 0: the plain knapsack) whose joint loss is within budget, by bisection
  let hi = withinJoint(tryRung(0).joint) ? 0 : LADDER.length - 1
  if (hi > 0 && withinJoint(tryRung(hi).joint)) {
    let lo = 0
    while (hi - lo > 1) {
      const k = (lo + hi) >> 1
      if (withinJoint(tryRung(k).joint)) hi = k
      else lo = k
    }
  }
  let chosen = tried.get(hi)!.chosen
  const first = jointRun(chosen)!
  jointValues = first.values
  let joint = first.j
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
  while (!withinJoint(joint)) {
    let best: { l: number; c: Cand; values: Map<string, Tensor>[]; j: number; gain: number } | undefined
    for (let l = 0; l < layers.length; l++) {
      const c = raised(l)
      if (!c) continue
      const { values, j } = jointRun(chosen.map((o, k) => (k === l ? c : o)), l)!
      const gain = (joint - j) / Math.max(1e-9, c.cost - chosen[l].cost)
      if (j < joint && (!best || gain > best.gain)) best = { l, c, values, j, gain }
    }
    if (!best) break
    chosen = chosen.map((o, k) => (k === best!.l ? best!.c : o))
    jointValues = best.values
    joint = best.j
    opts.log?.(`ola: raised ${layers[best.l].act.node.name} to degree ${best.c.degree}: joint loss ${joint.toFixed(2)} of ${jointAllowed.toFixed(2)} samples allowed`)
  }
  // The knapsack sums the layers' errors, which overstates the joint error when their flips fall on
  // the same samples: lower layers to cheaper measured candidates, the largest possible saving first
  // and the cheapest candidate that keeps the joint error within budget, until none can be lowered.
  // A candidate that once took the joint error past the budget is not tried again (lowering other
  // layers mostly adds error, though not always: fmnist32/resnet20 once went from 2.64 to 2.00), so
  // the loop runs each candidate at most once; a trial stops at the chunk where its loss passes the budget.
  const failed = new Set<Cand>()
  for (let lowered = withinJoint(joint); lowered; ) {
    lowered = false
    const order = layers.map((_, l) => l).sort((a, b) => saving(b) - saving(a) || a - b)
    for (const l of order) {
      for (const c of options[l].filter((c) => c.cost < chosen[l].cost && within(c.loss) && !failed.has(c)).sort((a, b) => a.cost - b.cost)) {
        const next = chosen.map((o, k) => (k === l ? c : o))
        const r = jointRun(next, l, jointAllowed)
        if (!r) {
          failed.add(c)
          continue
        }
        const { values, j } = r
        opts.log?.(`ola: lowered ${layers[l].act.node.name} to degree ${c.degree}: joint loss ${j.toFixed(2)} of ${jointAllowed.toFixed(2)} samples allowed`)
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
    choices.set(act.node.name, { degree: c.degree, poly: c.poly, error: c.loss / N, cost: c.cost, candidates: options[l].map(({ degree, flips, loss, consumption, cost }) => ({ degree, flips, loss, consumption, cost })) })
  })
  if (!withinJoint(joint)) opts.log?.(`ola: the budget is not met: the joint loss is ${joint.toFixed(2)} of ${M} calibration samples`)
  return { choices, jointError: joint / M, totalCost: chosen.reduce((s, c) => s + c.cost, 0), samples: N, jointSamples: M }
}

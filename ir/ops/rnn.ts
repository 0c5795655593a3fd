/**
 * ONNX's one-layer recurrent networks (opsets 7 and 14), run over the sequence in float64. For each
 * direction (forward, reverse, or both: direction 0 forward, 1 reverse), each batch entry b and each
 * step t < sequence_lens[b] (all of them without sequence_lens), with x = X[t], h and c the
 * previous hidden and cell states (initial_h / initial_c, default 0), W·x + Wb and R·h + Rb the
 * gate rows of W, R and B (B = [Wb, Rb], default 0), P = [Pi, Po, Pf] (default 0):
 *
 *   RNN   h' = f(Wi·x + Ri·h + Wbi + Rbi)                                        (f = Tanh)
 *   GRU   z = f(Wz·x + Rz·h + Wbz + Rbz), r = f(Wr·x + Rr·h + Wbr + Rbr)        (f = Sigmoid, g = Tanh)
 *         n = g(Wh·x + Rh·(r ⊙ h) + Rbh + Wbh)       (linear_before_reset = 0)
 *         n = g(Wh·x + r ⊙ (Rh·h + Rbh) + Wbh)       (linear_before_reset = 1)
 *         h' = (1 - z) ⊙ n + z ⊙ h
 *   LSTM  i = f(Wi·x + Ri·h + Pi ⊙ c + Wbi + Rbi)                                (f = Sigmoid, g = h = Tanh)
 *         f_ = f(Wf·x + Rf·h + Pf ⊙ c + Wbf + Rbf)   (1 - i with input_forget = 1, as onnxruntime)
 *         c' = f_ ⊙ c + i ⊙ g(Wc·x + Rc·h + Wbc + Rbc)
 *         o = f(Wo·x + Ro·h + Po ⊙ c' + Wbo + Rbo),  h' = o ⊙ h(c')
 *
 * Gate rows are stacked in W, R and B in the orders i (RNN), z r h (GRU), i o f c (LSTM). `clip`
 * bounds the gate pre-activations (the inputs of f and g) to [-clip, clip], as onnxruntime does.
 * Outputs: Y (every step's h, zero past a sequence's length), Y_h (the last h) and, for LSTM, Y_c
 * (the last c); each is an IR node of its own. layout = 0 is [seq, batch, ...] (Y [seq, dirs,
 * batch, hidden], states [dirs, batch, hidden]); layout = 1 is batch first (Y [batch, seq, dirs,
 * hidden], states [batch, dirs, hidden]). Non-polynomial on a secret (the default form).
 */
import { defineOp, OpError, outputIndex, type OnnxAttrs, type OpDef, type RawAttrs } from '../op.js'
import { isInteger, type Tensor, type TensorType } from '../tensor.js'
import { requireFloat, withData } from './util.js'

/** An activation with its parameters (those it does not take are 0). */
interface Activation {
  name: string
  alpha: number
  beta: number
}

/** The activations ONNX lists for its recurrent ops: how many of alpha, beta each takes, their defaults. */
const ACTIVATIONS: Record<string, { alpha?: number; beta?: number; f: (x: number, a: number, b: number) => number }> = {
  Relu: { f: (x) => Math.max(0, x) },
  Tanh: { f: Math.tanh },
  Sigmoid: { f: (x) => 1 / (1 + Math.exp(-x)) },
  Affine: { alpha: 1, beta: 0, f: (x, a, b) => a * x + b },
  LeakyRelu: { alpha: 0.01, f: (x, a) => (x >= 0 ? x : a * x) },
  ThresholdedRelu: { alpha: 1, f: (x, a) => (x >= a ? x : 0) },
  ScaledTanh: { alpha: 1, beta: 1, f: (x, a, b) => a * Math.tanh(b * x) },
  HardSigmoid: { alpha: 0.2, beta: 0.5, f: (x, a, b) => Math.min(Math.max(a * x + b, 0), 1) },
  Elu: { alpha: 1, f: (x, a) => (x >= 0 ? x : a * Math.expm1(x)) },
  Softsign: { f: (x) => x / (1 + Math.abs(x)) },
  Softplus: { f: (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))) },
}

type Direction = 'forward' | 'reverse' | 'bidirectional'

interface RecurrentAttrs {
  direction: Direction
  /** The hidden_size attribute when the node has one (R's last dim otherwise). */
  hiddenSize?: number
  layout: number
  /** One list per direction's activations (f; f g; f g h), in ONNX's order. */
  activations: Activation[]
  clip?: number
  linearBeforeReset: boolean
  inputForget: boolean
  output?: number
  outputs?: number
}

/** What differs between RNN, GRU and LSTM. */
interface Cell {
  name: string
  /** Gate rows per hidden unit in W, R and B. */
  gates: number
  /** The default activations of one direction. */
  acts: string[]
  /** Outputs: Y, Y_h (and Y_c). */
  outputs: number
  /** ONNX inputs: X W R B sequence_lens initial_h (initial_c P). */
  inputs: number
}

const RNN_CELL: Cell = { name: 'RNN', gates: 1, acts: ['Tanh'], outputs: 2, inputs: 6 }
const GRU_CELL: Cell = { name: 'GRU', gates: 3, acts: ['Sigmoid', 'Tanh'], outputs: 2, inputs: 6 }
const LSTM_CELL: Cell = { name: 'LSTM', gates: 4, acts: ['Sigmoid', 'Tanh', 'Tanh'], outputs: 3, inputs: 8 }

function parseAttrs(cell: Cell, r: RawAttrs): RecurrentAttrs {
  const direction = r.string('direction', 'forward')
  if (direction !== 'forward' && direction !== 'reverse' && direction !== 'bidirectional')
    throw new OpError(`${cell.name} direction '${direction}' is not one of forward, reverse, bidirectional`)
  const dirs = direction === 'bidirectional' ? 2 : 1
  if (r.has('layout') && r.opset < 14) throw new OpError(`${cell.name} has no layout attribute before opset 14`)
  const layout = r.int('layout', 0)
  if (layout !== 0 && layout !== 1) throw new OpError(`${cell.name} layout ${layout} is not 0 or 1`)
  const hiddenSize = r.has('hidden_size') ? r.int('hidden_size') : undefined
  if (hiddenSize !== undefined && hiddenSize <= 0) throw new OpError(`${cell.name} hidden_size must be positive, got ${hiddenSize}`)
  let clip: number | undefined
  if (r.has('clip')) {
    clip = r.float('clip')
    if (!(clip > 0)) throw new OpError(`${cell.name} clip must be positive, got ${clip}`)
  }
  const lbr = cell === GRU_CELL ? r.int('linear_before_reset', 0) : 0
  if (r.has('linear_before_reset') && cell !== GRU_CELL) throw new OpError(`${cell.name} has no linear_before_reset attribute`)
  if (lbr !== 0 && lbr !== 1) throw new OpError(`GRU linear_before_reset ${lbr} is not 0 or 1`)
  const forget = cell === LSTM_CELL ? r.int('input_forget', 0) : 0
  if (r.has('input_forget') && cell !== LSTM_CELL) throw new OpError(`${cell.name} has no input_forget attribute`)
  if (forget !== 0 && forget !== 1) throw new OpError(`LSTM input_forget ${forget} is not 0 or 1`)
  return { direction, hiddenSize, layout, activations: parseActivations(cell, r, dirs), clip, linearBeforeReset: lbr === 1, inputForget: forget === 1 }
}

/**
 * The activations of every direction: the `activations` list (one per function and direction), or
 * the defaults. activation_alpha and activation_beta give, in order, the alpha of each activation
 * that takes one and the beta of each that takes one; a list of any other length is refused.
 */
function parseActivations(cell: Cell, r: RawAttrs, dirs: number): Activation[] {
  const want = cell.acts.length * dirs
  const known = new Map(Object.keys(ACTIVATIONS).map((k) => [k.toLowerCase(), k]))
  const names = r.has('activations')
    ? r.values.get('activations')
    : Array.from({ length: dirs }, () => cell.acts).flat()
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw new OpError(`${cell.name} activations must be a list of strings`)
  if (names.length !== want) throw new OpError(`${cell.name} with direction ${dirs === 2 ? 'bidirectional' : 'forward or reverse'} needs ${want} activations, got ${names.length}`)
  const acts = (names as string[]).map((n) => {
    const name = known.get(n.toLowerCase())
    if (!name) throw new OpError(`${cell.name} activation '${n}' is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`)
    const d = ACTIVATIONS[name]
    return { name, alpha: d.alpha ?? 0, beta: d.beta ?? 0 }
  })
  for (const p of ['alpha', 'beta'] as const) {
    const attr = `activation_${p}`
    if (!r.has(attr)) continue
    const vals = r.floats(attr)
    const takers = acts.filter((a) => ACTIVATIONS[a.name][p] !== undefined)
    if (vals.length !== takers.length)
      throw new OpError(`${cell.name} ${attr} has ${vals.length} values but ${takers.length} of its activations (${acts.map((a) => a.name).join(', ')}) take ${p}`)
    takers.forEach((a, i) => (a[p] = vals[i]))
  }
  return acts
}

function writeAttrs(cell: Cell, a: RecurrentAttrs, opset: number): OnnxAttrs {
  if (a.layout !== 0 && opset < 14) throw new OpError(`${cell.name} layout ${a.layout} has no ONNX form before opset 14`)
  const dirs = a.direction === 'bidirectional' ? 2 : 1
  const defaults = Array.from({ length: dirs }, () => cell.acts).flat()
  if (a.activations.some((x, i) => x.name !== defaults[i]))
    throw new OpError(`${cell.name} activations ${a.activations.map((x) => x.name).join(', ')} have no ONNX form here: the writer does not emit string-list attributes`)
  return {
    direction: a.direction !== 'forward' ? { s: a.direction } : undefined,
    hidden_size: a.hiddenSize !== undefined ? { i: a.hiddenSize } : undefined,
    layout: a.layout !== 0 ? { i: a.layout } : undefined,
    clip: a.clip !== undefined ? { f: a.clip } : undefined,
    linear_before_reset: a.linearBeforeReset ? { i: 1 } : undefined,
    input_forget: a.inputForget ? { i: 1 } : undefined,
  }
}

/** Dimensions of one recurrent node: sequence, batch, input, hidden, directions. */
interface Dims {
  S: number
  B: number
  I: number
  H: number
  D: number
}

function checkShape(t: TensorType | undefined, shape: readonly number[], what: string, dtype?: string): void {
  if (!t) return
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new OpError(`${what} must have shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`)
  if (dtype && t.dtype !== dtype) throw new OpError(`${what} must be ${dtype} like X, got ${t.dtype}`)
}

function inferDims(cell: Cell, ins: readonly TensorType[], a: RecurrentAttrs): Dims {
  const [x, w, rr, b, lens, h0, c0, p] = ins
  requireFloat(x, `${cell.name} X`)
  if (x.shape.length !== 3) throw new OpError(`${cell.name} X must have rank 3, got [${x.shape.join(', ')}]`)
  const [S, B] = a.layout === 0 ? x.shape : [x.shape[1], x.shape[0]]
  const I = x.shape[2]
  const D = a.direction === 'bidirectional' ? 2 : 1
  if (rr.shape.length !== 3) throw new OpError(`${cell.name} R must have rank 3, got [${rr.shape.join(', ')}]`)
  const H = a.hiddenSize ?? rr.shape[2]
  const G = cell.gates * H
  checkShape(w, [D, G, I], `${cell.name} W`, x.dtype)
  checkShape(rr, [D, G, H], `${cell.name} R`, x.dtype)
  checkShape(b, [D, 2 * G], `${cell.name} B`, x.dtype)
  if (lens) {
    checkShape(lens, [B], `${cell.name} sequence_lens`)
    if (!isInteger(lens.dtype)) throw new OpError(`${cell.name} sequence_lens must be an integer tensor, got ${lens.dtype}`)
  }
  const state = a.layout === 0 ? [D, B, H] : [B, D, H]
  checkShape(h0, state, `${cell.name} initial_h`, x.dtype)
  checkShape(c0, state, `${cell.name} initial_c`, x.dtype)
  checkShape(p, [D, 3 * H], `${cell.name} P`, x.dtype)
  return { S, B, I, H, D }
}

/** Y, Y_h and Y_c (LSTM) of a recurrent node, in the node's layout. */
function run(cell: Cell, ins: readonly Tensor[], a: RecurrentAttrs, dm: Dims): Float64Array[] {
  const [x, w, rr, bias, lens, h0, c0, p] = ins
  const { S, B, I, H, D } = dm
  const G = cell.gates * H
  const k = cell.acts.length
  const y = new Float64Array(S * D * B * H)
  const yh = new Float64Array(D * B * H)
  const yc = new Float64Array(D * B * H)
  const xAt = (t: number, b: number) => (a.layout === 0 ? (t * B + b) * I : (b * S + t) * I)
  const stateAt = (d: number, b: number) => (a.layout === 0 ? (d * B + b) * H : (b * D + d) * H)
  const yAt = (t: number, d: number, b: number) => (a.layout === 0 ? ((t * D + d) * B + b) * H : ((b * S + t) * D + d) * H)
  const clip = a.clip ?? Infinity
  const xw = new Float64Array(G)
  const hr = new Float64Array(G)
  const rh = new Float64Array(H)
  for (let d = 0; d < D; d++) {
    const reverse = a.direction === 'reverse' || d === 1
    const [f, g, hAct] = a.activations.slice(d * k, (d + 1) * k).map((act) => {
      const fn = ACTIVATIONS[act.name].f
      return (v: number) => fn(v, act.alpha, act.beta)
    })
    const F = (v: number) => f(Math.min(Math.max(v, -clip), clip))
    const Gf = (v: number) => g(Math.min(Math.max(v, -clip), clip))
    const wOff = d * G * I
    const rOff = d * G * H
    const pOff = d * 3 * H
    const wb = (row: number) => (bias ? bias.data[d * 2 * G + row] : 0)
    const rb = (row: number) => (bias ? bias.data[d * 2 * G + G + row] : 0)
    const rRow = (row: number, v: Float64Array) => {
      let s = 0
      for (let j = 0; j < H; j++) s += rr.data[rOff + row * H + j] * v[j]
      return s
    }
    const peep = (gate: number, j: number) => (p ? p.data[pOff + gate * H + j] : 0)
    for (let b = 0; b < B; b++) {
      const len = lens ? lens.data[b] : S
      if (!(Number.isInteger(len) && len >= 0 && len <= S)) throw new OpError(`${cell.name} sequence_lens[${b}] = ${len} is not in [0, ${S}]`)
      const h = h0 ? h0.data.slice(stateAt(d, b), stateAt(d, b) + H) : new Float64Array(H)
      const c = c0 ? c0.data.slice(stateAt(d, b), stateAt(d, b) + H) : new Float64Array(H)
      for (let s = 0; s < len; s++) {
        const t = reverse ? len - 1 - s : s
        const xo = xAt(t, b)
        for (let row = 0; row < G; row++) {
          let v = wb(row)
          for (let i = 0; i < I; i++) v += w.data[wOff + row * I + i] * x.data[xo + i]
          xw[row] = v
          hr[row] = rRow(row, h) + rb(row)
        }
        if (cell === RNN_CELL) for (let j = 0; j < H; j++) h[j] = F(xw[j] + hr[j])
        else if (cell === GRU_CELL) {
          for (let j = 0; j < H; j++) rh[j] = F(xw[H + j] + hr[H + j]) * (a.linearBeforeReset ? 1 : h[j])
          const n = new Float64Array(H)
          for (let j = 0; j < H; j++)
            n[j] = Gf(xw[2 * H + j] + (a.linearBeforeReset ? rh[j] * hr[2 * H + j] : rRow(2 * H + j, rh) + rb(2 * H + j)))
          for (let j = 0; j < H; j++) {
            const z = F(xw[j] + hr[j])
            h[j] = (1 - z) * n[j] + z * h[j]
          }
        } else
          for (let j = 0; j < H; j++) {
            const i = F(xw[j] + hr[j] + peep(0, j) * c[j])
            const fg = a.inputForget ? 1 - i : F(xw[2 * H + j] + hr[2 * H + j] + peep(2, j) * c[j])
            c[j] = fg * c[j] + i * Gf(xw[3 * H + j] + hr[3 * H + j])
            const o = F(xw[H + j] + hr[H + j] + peep(1, j) * c[j])
            h[j] = o * hAct(c[j])
          }
        y.set(h, yAt(t, d, b))
      }
      yh.set(h, stateAt(d, b))
      yc.set(c, stateAt(d, b))
    }
  }
  return [y, yh, yc]
}

function recurrent(cell: Cell, doc: string): OpDef<RecurrentAttrs> {
  return defineOp<RecurrentAttrs>({
    doc,
    kind: 'nonlinear',
    arity: [3, cell.inputs],
    since: 7,
    attrs: (r) => parseAttrs(cell, r),
    onnx: (a, opset) => writeAttrs(cell, a, opset),
    outputs: (a) => a.outputs ?? 1,
    infer: (ins, a) => {
      const k = outputIndex(a)
      if (k >= cell.outputs) throw new OpError(`${cell.name} has ${cell.outputs} outputs, not ${k + 1}`)
      const { S, B, H, D } = inferDims(cell, ins, a)
      const shape = k === 0 ? (a.layout === 0 ? [S, D, B, H] : [B, S, D, H]) : a.layout === 0 ? [D, B, H] : [B, D, H]
      return { dtype: ins[0].dtype, shape }
    },
    eval: (ins, a, out) => withData(out, run(cell, ins, a, inferDims(cell, ins, a))[outputIndex(a)]),
  })
}

export const RNN = recurrent(RNN_CELL, 'simple RNN over a sequence: h = f(W x + R h + Wb + Rb); outputs Y, Y_h')
export const GRU = recurrent(GRU_CELL, 'GRU over a sequence (gates z r h, linear_before_reset); outputs Y, Y_h')
export const LSTM = recurrent(LSTM_CELL, 'LSTM over a sequence (gates i o f c, peepholes P, input_forget); outputs Y, Y_h, Y_c')

export const RNN_OPS: Record<string, OpDef> = { RNN, GRU, LSTM }

/**
 * A noiseless float64 execution of a CKKS plan on slot vectors: the same layouts, rotations and
 * plaintext products as the encrypted run, without encryption. It checks the lowering (packing,
 * diagonals, reductions) quickly and separates packing bugs from CKKS noise.
 */
import type { Tensor } from '../../ir/tensor.js'
import { sizeOf } from '../../ir/tensor.js'
import { constDense, constIndex, type CkksPlan, type Instr } from './plan.js'

/** Pack one image's input into the plan's slot vectors (one per ciphertext). */
export type LayoutOf = Pick<CkksPlan, 'inputs' | 'outputs' | 'params' | 'constants'>

export function packInput(plan: LayoutOf, inputIndex: number, x: Float64Array): Float64Array[] {
  const inp = plan.inputs[inputIndex]
  const S = plan.params.slots
  const map = constIndex(plan.constants[inp.slotMap])
  return inp.regs.map((_, j) => {
    const v = new Float64Array(S)
    for (let s = 0; s < S; s++) {
      const e = map[j * S + s]
      if (e >= 0) v[s] = x[e]
    }
    return v
  })
}

/** Read an output's elements from its decoded slot vector. */
export function unpackOutput(plan: LayoutOf, outputIndex: number, slots: ArrayLike<number>): Float64Array {
  const o = plan.outputs[outputIndex]
  const idx = constIndex(plan.constants[o.slots])
  return Float64Array.from(idx, (s) => slots[s])
}

/** Images per inference: the plan's input batch (`pic compile --batch K`). */
export function batchOf(plan: { inputs: { shape: number[] }[] }): number {
  return plan.inputs[0].shape.length > 0 ? Math.max(1, plan.inputs[0].shape[0]) : 1
}

/** Inference g's input: images g K .. g K + K - 1, zeros for the images past the end. */
export function groupInput(images: Tensor, g: number, K: number): Float64Array {
  const per = sizeOf(images.shape.slice(1))
  const x = new Float64Array(K * per)
  const n = Math.min(K, images.shape[0] - g * K)
  x.set(images.data.subarray(g * K * per, (g * K + n) * per))
  return x
}

/** Store inference g's output values (K images) for the images that exist. */
export function storeGroup(out: Float64Array, vals: ArrayLike<number>, g: number, K: number, B: number): void {
  const per = vals.length / K
  const n = Math.min(K, B - g * K)
  for (let i = 0; i < n * per; i++) out[g * K * per + i] = vals[i]
}

/** Run the plan without encryption on a batch (first dim) of inputs; returns one tensor per output. */
export function simulatePlan(plan: CkksPlan, images: Tensor): Tensor[] {
  return simulateWithSlots(plan, images).outputs
}

/**
 * The same, with every slot of every output register per inference (`slots[inference][output]`):
 * the noiseless values the server's output ciphertexts hold, non-output slots included. `observe`
 * sees every instruction's result (the range check, ranges.ts).
 */
export function simulateWithSlots(plan: CkksPlan, images: Tensor, observe?: (instr: Instr, slots: Float64Array) => void): { outputs: Tensor[]; slots: Float64Array[][] } {
  const allSlots: Float64Array[][] = []
  const S = plan.params.slots
  const B = images.shape[0]
  const K = batchOf(plan)
  const dense = new Map<string, Float64Array>()
  const pt = (id: string) => {
    let v = dense.get(id)
    if (!v) dense.set(id, (v = constDense(plan.constants[id], S)))
    return v
  }
  const outs = plan.outputs.map((o) => new Float64Array(B * sizeOf(o.shape.slice(1))))
  for (let b = 0; b < Math.ceil(B / K); b++) {
    const regs = new Map<number, Float64Array>()
    const x = groupInput(images, b, K)
    packInput(plan, 0, x).forEach((v, j) => regs.set(plan.inputs[0].regs[j], v))
    for (const i of plan.instructions) {
      const a = regs.get(i.args[0])!
      let r: Float64Array
      switch (i.op) {
        case 'rotate':
          r = new Float64Array(S)
          for (let s = 0; s < S; s++) r[s] = a[(s + i.step!) % S]
          break
        case 'mulPlain': {
          const p = pt(i.pt!)
          r = a.map((v, s) => v * p[s])
          break
        }
        case 'addPlain': {
          const p = pt(i.pt!)
          r = a.map((v, s) => v + p[s])
          break
        }
        case 'add': {
          const c = regs.get(i.args[1])!
          r = a.map((v, s) => v + c[s])
          break
        }
        case 'mul': {
          const c = regs.get(i.args[1])!
          r = a.map((v, s) => v * c[s])
          break
        }
        case 'square':
          r = a.map((v) => v * v)
          break
        case 'negate':
          r = a.map((v) => -v)
          break
        default:
          r = a
      }
      regs.set(i.dst, r)
      observe?.(i, r)
    }
    plan.outputs.forEach((o, k) => {
      storeGroup(outs[k], unpackOutput(plan, k, regs.get(o.reg)!), b, K, B)
    })
    allSlots.push(plan.outputs.map((o) => regs.get(o.reg)!))
  }
  return { outputs: plan.outputs.map((o, k) => ({ dtype: 'float64', shape: [B, ...o.shape.slice(1)], data: outs[k] })), slots: allSlots }
}

/**
 * The evaluation side of a CKKS plan, shared by `pic run` (one process) and `pic serve` (the server):
 * plaintext encoding (resident or on demand) and the instruction loop over registers. It holds only
 * evaluation keys (relinearization, Galois); a refresh is delegated to the caller's `refresh`
 * callback (decrypt and re-encrypt by the key holder: in the same process for `pic run`, a round trip
 * to the client for `pic serve`). Nothing here creates, loads or uses a secret key.
 */
import { PicError } from '../../ir/errors.js'
import { constDense, type CkksPlan, type Instr } from './plan.js'
import type { SealContext, SEALLibrary } from './seal.js'

export class CkksEvalError extends PicError {}

export type Ct = ReturnType<SEALLibrary['CipherText']>
export type Pt = ReturnType<SEALLibrary['PlainText']>
export type Encoder = ReturnType<SEALLibrary['CKKSEncoder']>
export type Evaluator = ReturnType<SEALLibrary['Evaluator']>
export type GaloisKeys = ReturnType<SEALLibrary['GaloisKeys']>
export type RelinKeys = ReturnType<SEALLibrary['RelinKeys']>

/** Bytes of an uncompressed ciphertext of 2 polynomials at `level`. */
export function ctBytes(logN: number, level: number): number {
  return 2 * 2 ** logN * (level + 1) * 8
}

/** Encode `v` at the top level, then mod-switch to level `lv`; `shrink` gives the buffer back (kept plaintexts). */
export function encodeAt(sc: SealContext, encoder: Encoder, ev: Evaluator, v: Float64Array, scale: number, lv: number, shrink = false): Pt {
  const pt = encoder.encode(v, scale)!
  if (lv < sc.parmsIds.length - 1) {
    ev.plainModSwitchTo(pt, sc.parmsIds[lv], pt)
    if (shrink) pt.shrinkToFit()
  }
  return pt
}

/** A refresh by the key holder: a fresh ciphertext of the same values at `instr.level`, scale `instr.scale`. */
export type RefreshFn = (ct: Ct, instr: Instr) => Promise<Ct> | Ct

export interface EvalStats {
  counts: Record<string, number>
  msByKind: Record<string, number>
  /** Time spent in refreshes (excluded from the evaluation time). */
  refreshMs: number
  evaluateMs: number
  refreshes: number
}

export interface PlanEvaluator {
  /** Time to encode the resident plaintexts. */
  readonly setupMs: number
  /**
   * Run the instructions on `regs` (the inputs' registers filled); returns the output ciphertexts
   * (owned by the caller) and the timings. Every other register is freed.
   */
  run(regs: Map<number, Ct>, keys: EvalKeys, refresh: RefreshFn): Promise<{ outputs: Ct[]; stats: EvalStats }>
  /** The level of a register as the plan assigns it. */
  levelOf(reg: number): number
  dispose(): void
}

export interface EvalKeys {
  /** All Galois keys in one object (pic run) ... */
  gk?: GaloisKeys
  /** ... or one object per upload group, by step (the service, wire.ts galoisGroups). */
  gkByStep?: Map<number, GaloisKeys>
  rk?: RelinKeys
}

/** Prepare the evaluation of a plan (plaintexts encoded now when resident; they do not depend on the keys). */
export function planEvaluator(plan: CkksPlan, sc: SealContext, encoder: Encoder, ev: Evaluator): PlanEvaluator {
  const S = plan.params.slots
  const onDemand = plan.plaintexts === 'on demand'
  const t1 = performance.now()
  const level = new Map<number, number>()
  for (const i of plan.instructions) level.set(i.dst, i.level)
  plan.inputs.forEach((inp) => inp.regs.forEach((r, j) => level.set(r, inp.levels[j])))
  const pts = new Map<string, Pt>()
  const dense = new Map<string, Float64Array>()
  const ptFor = (i: Instr): Pt => {
    const lv = level.get(i.args[0])!
    const scale = i.op === 'mulPlain' ? i.ptScale! : i.scale
    if (onDemand) return encodeAt(sc, encoder, ev, constDense(plan.constants[i.pt!], S), scale, lv)
    const key = `${i.pt}@${lv}@${scale}`
    let pt = pts.get(key)
    if (!pt) {
      let v = dense.get(i.pt!)
      if (!v) dense.set(i.pt!, (v = constDense(plan.constants[i.pt!], S)))
      pts.set(key, (pt = encodeAt(sc, encoder, ev, v, scale, lv, true)))
    }
    return pt
  }
  if (!onDemand) for (const i of plan.instructions) if (i.op === 'mulPlain' || i.op === 'addPlain') ptFor(i)
  dense.clear()
  const setupMs = performance.now() - t1
  const lastUse = new Map<number, number>()
  plan.instructions.forEach((i, k) => i.args.forEach((a) => lastUse.set(a, k)))
  const outRegs = new Set(plan.outputs.map((o) => o.reg))
  async function run(regs: Map<number, Ct>, keys: EvalKeys, refresh: RefreshFn): Promise<{ outputs: Ct[]; stats: EvalStats }> {
    const { gk, rk } = keys
    const counts: Record<string, number> = {}
    const msByKind: Record<string, number> = {}
    let refreshMs = 0
    let refreshes = 0
    const tv = performance.now()
    try {
      for (let k = 0; k < plan.instructions.length; k++) {
        const i = plan.instructions[k]
        const a = regs.get(i.args[0])
        if (!a) throw new CkksEvalError(`internal: register ${i.args[0]} is not live at instruction ${k} (${i.op})`)
        let r: Ct
        const ti = performance.now()
        switch (i.op) {
          case 'rotate':
            r = ev.rotateVector(a, i.step!, keys.gkByStep?.get(i.step!) ?? gk!)!
            break
          case 'mulPlain': {
            const pt = ptFor(i)
            r = ev.multiplyPlain(a, pt)!
            if (onDemand) pt.delete()
            break
          }
          case 'addPlain': {
            const pt = ptFor(i)
            r = ev.addPlain(a, pt)!
            if (onDemand) pt.delete()
            break
          }
          case 'add': {
            const c = regs.get(i.args[1])!
            if (c.scale !== a.scale) c.setScale(a.scale)
            r = ev.add(a, c)!
            break
          }
          case 'mul':
            r = ev.multiply(a, regs.get(i.args[1])!)!
            break
          case 'square':
            r = ev.square(a)!
            break
          case 'relin':
            r = ev.relinearize(a, rk!)!
            break
          case 'rescale':
            r = ev.rescaleToNext(a)!
            break
          case 'modswitch':
            r = ev.cipherModSwitchTo(a, sc.parmsIds[i.level])!
            break
          case 'negate':
            r = ev.negate(a)!
            break
          case 'refresh': {
            const tr = performance.now()
            r = await refresh(a, i)
            refreshes++
            refreshMs += performance.now() - tr
            break
          }
        }
        if (Math.abs(r.scale - i.scale) > 1e-9 * i.scale) throw new CkksEvalError(`internal: instruction ${k} (${i.op}) has scale 2^${Math.log2(r.scale)}, the plan says 2^${Math.log2(i.scale)}`)
        if (r.scale !== i.scale) r.setScale(i.scale)
        regs.set(i.dst, r)
        counts[i.op] = (counts[i.op] ?? 0) + 1
        msByKind[i.op] = (msByKind[i.op] ?? 0) + performance.now() - ti
        for (const x2 of new Set(i.args))
          if (lastUse.get(x2) === k && !outRegs.has(x2)) {
            regs.get(x2)!.delete()
            regs.delete(x2)
          }
      }
      const outputs = plan.outputs.map((o) => {
        const ct = regs.get(o.reg)!
        regs.delete(o.reg)
        return ct
      })
      return { outputs, stats: { counts, msByKind, refreshMs, refreshes, evaluateMs: performance.now() - tv - refreshMs } }
    } finally {
      for (const ct of regs.values()) ct.delete()
      regs.clear()
    }
  }

  return {
    setupMs,
    run,
    levelOf: (reg) => level.get(reg) ?? 0,
    dispose: () => {
      for (const pt of pts.values()) pt.delete()
      pts.clear()
    },
  }
}

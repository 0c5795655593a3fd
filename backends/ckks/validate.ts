/**
 * The plan validator (as EVA validates its programs): after every stage has run, checks the finished
 * plan on its own, from the plan's data alone, whatever the stages decided: security of the
 * parameters, and that node-seal's heap holds the plan's keys, ciphertexts and plaintexts at the
 * peak (memory.ts). `pic compile` refuses a plan that fails; `pic run` checks again before key
 * generation, so a plan edited or compiled for a larger heap fails in one line, not in a bad_alloc.
 */
import { describeNode, type Graph } from '../../ir/graph.js'
import { PicError } from '../../ir/errors.js'
import { memoryProblem, planMemory, SEAL_HEAP_BYTES, type PlanMemory } from './memory.js'
import { checkSecure } from './params.js'
import type { CkksPlan } from './plan.js'
import { bitLength, maskLog2, modulusAt, refreshBitsNeeded, refreshModulusHolds } from './refresh.js'

export class CkksPlanError extends PicError {}

/** The plan's memory, recomputed from its instructions, keys and parameters. */
export function recomputeMemory(plan: CkksPlan, heapBytes = plan.stats.memory?.heapBytes ?? SEAL_HEAP_BYTES): PlanMemory {
  return planMemory({
    logN: plan.params.logN,
    primeCount: plan.params.primes.length,
    rotationKeys: plan.keys.rotations.length,
    relin: plan.keys.relin,
    instructions: plan.instructions,
    inputs: plan.inputs,
    outputs: plan.outputs,
    plaintexts: plan.plaintexts ?? 'resident',
    heapBytes,
  })
}

/** Throws a CkksPlanError naming the layer at the peak when the plan cannot fit node-seal's heap. */
export function validatePlan(plan: CkksPlan, g?: Graph, heapBytes?: number): PlanMemory {
  checkSecure(plan.params)
  checkRefreshReserve(plan)
  const mem = recomputeMemory(plan, heapBytes)
  if (!mem.fits) {
    let layer = plan.stats.memory?.peakLayer
    if (mem.peakNode !== undefined && (layer === undefined || plan.stats.memory?.peakNode !== mem.peakNode)) {
      const n = g?.nodes.find((x) => x.name === mem.peakNode)
      layer = n ? describeNode(n) : `node '${mem.peakNode}'`
    }
    throw new CkksPlanError(`${layer ? `${layer}: ` : ''}${memoryProblem(mem)}`)
  }
  return mem
}

/**
 * A plan compiled for masked refreshes (refresh.ts) keeps its promise: every refresh reads a
 * ciphertext at a level whose modulus holds value + mask without wrapping (`refreshModulusHolds`:
 * 2 (A_c + 2 B_c) < Q_l with the plan's own primes, A_c = 2^sigma ceil(sqrt N) B_c, B_c = ceil(scale B)).
 */
export function checkRefreshReserve(plan: CkksPlan): void {
  const m = plan.refreshMask
  if (!m) return
  if (m.domain !== 'coefficient' || m.maskLog2 !== maskLog2(plan.params.logN, m.sigma))
    throw new CkksPlanError('the plan records the slot-domain refresh masks of before (or a mask inconsistent with its ring): recompile it')
  const level = new Map<number, { level: number; scale: number }>()
  plan.inputs.forEach((inp) => inp.regs.forEach((r, j) => level.set(r, { level: inp.levels[j], scale: inp.scale })))
  for (const i of plan.instructions) {
    if (i.op === 'refresh') {
      const a = level.get(i.args[0])
      if (!a) throw new CkksPlanError(`refresh of register ${i.args[0]}, which nothing defines`)
      const Q = modulusAt(plan.params.primeValues, a.level)
      if (!refreshModulusHolds(Q, a.scale, plan.params.logN, m.sigma, m.bound)) {
        const need = refreshBitsNeeded(plan.params.logN, Math.log2(a.scale), m.sigma, m.bound)
        throw new CkksPlanError(`a masked refresh reads level ${a.level} (${bitLength(Q)} bits of modulus), the mask (2^-${m.sigma} per refresh, |x| <= ${m.bound}) needs ${need.toFixed(1)}`)
      }
    }
    level.set(i.dst, { level: i.level, scale: i.scale })
  }
}

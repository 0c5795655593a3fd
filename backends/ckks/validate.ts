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

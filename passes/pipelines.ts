/**
 * The pipelines: plain arrays of passes, all visible here. `common` holds the exact passes every
 * backend runs: constants folded, no-ops removed, BatchNorm and biases folded into the linear ops,
 * decomposed activations and LayerNorms recognized, polynomial activations folded, dead code dropped. Then come
 * the approximation passes, which do nothing unless the PassContext's options ask for them
 * (--approx, --relu-budget, ...). Today every backend runs the same sequence (so `pic infer` and
 * `pic eval` see exactly what CKKS and MPC compile); `PIPELINES` names one per backend so a backend
 * can diverge without touching the CLI.
 */
import { eliminateDeadCode } from './eliminate-dead-code.js'
import { foldBatchnorm } from './fold-batchnorm.js'
import { foldConstants } from './fold-constants.js'
import { foldPolynomials } from './fold-polynomials.js'
import { fuseBias } from './fuse-bias.js'
import type { Pass } from './pass.js'
import { recognizeActivations } from './recognize-activations.js'
import { recognizeNormalizations } from './recognize-normalizations.js'
import { approximate } from './approximate.js'
import { approximateNormalizations } from './approximate-normalizations.js'
import { lowerMaxpool } from './lower-maxpool.js'
import { reluBudget } from './relu-budget.js'
import { removeNoops } from './remove-noops.js'

export const common: readonly Pass[] = [
  foldConstants,
  removeNoops,
  foldBatchnorm,
  fuseBias,
  recognizeActivations,
  recognizeNormalizations,
  foldPolynomials,
  eliminateDeadCode,
]

/**
 * ReLU budget, MaxPool lowering, activation fitting, then LayerNorm and Softmax (calibrated on the graph
 * with its activations approximated); each does nothing unless its option is set.
 */
export const approximation: readonly Pass[] = [reluBudget, lowerMaxpool, approximate, approximateNormalizations]

/** What every backend runs today. */
export const standard: readonly Pass[] = [...common, ...approximation]

export type Options = Readonly<Record<string, unknown>>

/**
 * One pipeline per backend, as a function of the pass options so a backend can choose passes by
 * option. Today none does: every entry returns `standard` whatever `options` holds, because the
 * passes read their options from the PassContext (`passContext(options, { calib })`), and the
 * approximation passes do nothing unless those ask for them. Pass the same options to both.
 */
export const PIPELINES: Readonly<Record<string, (options: Options) => readonly Pass[]>> = {
  ir: (_options) => standard,
  ckks: (_options) => standard,
  mpc: (_options) => standard,
}

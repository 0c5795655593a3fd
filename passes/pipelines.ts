/**
 * The pipelines: plain arrays of passes, one per backend, all visible here. `common` holds the exact
 * passes every backend runs: constants folded, no-ops removed, BatchNorm and biases folded into the
 * linear ops, decomposed activations recognized, polynomial activations folded, dead code dropped.
 * Approximation passes for CKKS and MPC go into `ckks` and `mpc` after `common`; they read their
 * settings (--approx, ...) from the PassContext. `PIPELINES` gives each backend its pipeline for the
 * user's options.
 */
import { eliminateDeadCode } from './eliminate-dead-code.js'
import { foldBatchnorm } from './fold-batchnorm.js'
import { foldConstants } from './fold-constants.js'
import { foldPolynomials } from './fold-polynomials.js'
import { fuseBias } from './fuse-bias.js'
import type { Pass } from './pass.js'
import { recognizeActivations } from './recognize-activations.js'
import { approximate } from './approximate.js'
import { lowerMaxpool } from './lower-maxpool.js'
import { reluBudget } from './relu-budget.js'
import { removeNoops } from './remove-noops.js'

export const common: readonly Pass[] = [
  foldConstants,
  removeNoops,
  foldBatchnorm,
  fuseBias,
  recognizeActivations,
  foldPolynomials,
  eliminateDeadCode,
]

/** ReLU budget, MaxPool lowering and activation fitting; each does nothing unless its option is set. */
export const approximation: readonly Pass[] = [reluBudget, lowerMaxpool, approximate]

export const ir: readonly Pass[] = [...common, ...approximation]

export const ckks: readonly Pass[] = [...common, ...approximation]

export const mpc: readonly Pass[] = [...common, ...approximation]

export type Options = Readonly<Record<string, unknown>>

export const PIPELINES: Readonly<Record<string, (options: Options) => readonly Pass[]>> = {
  ir: () => ir,
  ckks: () => ckks,
  mpc: () => mpc,
}

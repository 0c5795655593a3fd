/** Every pass by name, and the pipelines. */
import { eliminateDeadCode } from './eliminate-dead-code.js'
import { foldBatchnorm } from './fold-batchnorm.js'
import { foldConstants } from './fold-constants.js'
import { foldPolynomials } from './fold-polynomials.js'
import { fuseBias } from './fuse-bias.js'
import { lowerForExport } from './lower-for-export.js'
import type { Pass } from './pass.js'
import { recognizeActivations } from './recognize-activations.js'
import { recognizeNormalizations } from './recognize-normalizations.js'
import { removeNoops } from './remove-noops.js'
import { approximate } from './approximate.js'
import { lowerMaxpool } from './lower-maxpool.js'
import { reluBudget } from './relu-budget.js'
import { approximateNormalizations } from './approximate-normalizations.js'

export { eliminateDeadCode, foldBatchnorm, foldConstants, foldPolynomials, fuseBias, lowerForExport, recognizeActivations, recognizeNormalizations, removeNoops, approximate, lowerMaxpool, reluBudget, approximateNormalizations }
export { parseNormSpec, parseSoftmaxSpec, type NormSpec, type SoftmaxSpec, type NormalizationReport } from './approximate-normalizations.js'
export { calibrate, type ActivationStats } from './calibrate.js'
export { parseApprox, type ApproxSpec, type LayerReport } from './approximate.js'
export { ola, depthMulCost, type CostModel } from './ola.js'
export { passContext, PassError, runPipeline, type Pass, type PassContext, type PipelineOptions } from './pass.js'
export { approximation, common, PIPELINES, standard } from './pipelines.js'

export const PASSES: Readonly<Record<string, Pass>> = Object.fromEntries(
  [foldConstants, removeNoops, foldBatchnorm, fuseBias, recognizeActivations, recognizeNormalizations, foldPolynomials, eliminateDeadCode, lowerForExport, reluBudget, lowerMaxpool, approximate, approximateNormalizations].map((p) => [p.name, p]),
)

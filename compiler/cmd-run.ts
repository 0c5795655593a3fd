/**
 * `pic run PLAN --input X.npy --output Y.npy [--labels Y.npy] [--json] [--refresh client [--refresh-mask off]]`: executes a compiled plan on
 * every image of X. CKKS plans run with node-seal (key generation, encryption, evaluation,
 * decryption); the compiled graph stored beside the plan gives maxAbsErrorVsPlain. With --labels,
 * accuracy = #{i : argmax(y_i) = label_i} / images (labelAccuracy, shared with pic query).
 */
import { existsSync, readFileSync } from 'node:fs'
import { attachSidecar, checkRunnable, referenceGraph, runPlan, validatePlan, type CkksPlanFile } from '../backends/ckks/index.js'
import { batchOf, groupInput, storeGroup } from '../backends/ckks/simulate.js'
import { interpret } from '../ir/interpret.js'
import { maxAbsDiff } from '../ir/tensor.js'
import { top1Agreement } from '../passes/ola.js'
import { flag, logger, need, onePositional, printJSON, str, UsageError, type Command } from './cli-kit.js'
import { readJSONFile, sidecarPath } from './model.js'
import { checkWritable, PicError } from './errors.js'
import { readFiniteNpy, readNpy, writeNpy } from './npy.js'
import type { Tensor } from '../ir/tensor.js'
import { argmax } from '../passes/ola.js'

/** The --labels option of pic run and pic query. */
export const LABELS_OPTION = { labels: { type: 'string' as const, arg: 'Y.npy', help: 'integer labels, one per image: report the accuracy (argmax of the decrypted outputs)' } }

/**
 * Read --labels (if given) for `images` inputs: one integer label per image, else a one-line error.
 * Read before any work, so a wrong file fails fast.
 */
export function readLabels(file: string | undefined, images: number): Float64Array | undefined {
  if (file === undefined) return undefined
  const y = readNpy(file)
  if (y.data.length !== images) throw new PicError(`${file}: ${y.data.length} labels for ${images} images`)
  const bad = y.data.findIndex((v) => !Number.isInteger(v) || v < 0)
  if (bad >= 0) throw new PicError(`${file}: label ${bad} is ${y.data[bad]}, not a class index (a non-negative integer)`)
  return y.data
}

/** Top-1 accuracy of `out` (batch first) against `labels`: argmax per image, compared. */
export function labelAccuracy(out: Tensor, labels: Float64Array): { accuracy: number; correct: number; images: number } {
  const pred = argmax(out)
  const correct = pred.filter((v, i) => v === labels[i]).length
  return { accuracy: correct / Math.max(1, labels.length), correct, images: labels.length }
}

/** ", accuracy 97.00% (97/100)" for a text summary, or '' without labels. */
export function accuracyText(a: { accuracy: number; correct: number; images: number } | undefined): string {
  return a ? `, accuracy ${(100 * a.accuracy).toFixed(2)}% (${a.correct}/${a.images})` : ''
}

export const run: Command = {
  name: 'run',
  summary: 'Run a compiled CKKS plan on encrypted inputs (keygen, encrypt, evaluate, decrypt) and write the outputs.',
  usage: 'pic run PLAN.json --input X.npy --output Y.npy [--labels Y.npy] [--refresh client [--refresh-mask on|off]] [--json]',
  options: {
    input: { type: 'string', arg: 'X.npy', help: 'inputs, batch first; each image is one inference' },
    output: { type: 'string', short: 'o', arg: 'Y.npy', help: 'decrypted outputs' },
    ...LABELS_OPTION,
    refresh: { type: 'string', arg: 'MODE', help: "bootstraps: 'none' (refuse plans that need them, default) or 'client' (client-aided refresh)" },
    'refresh-mask': { type: 'string', arg: 'on|off', help: "client-aided refreshes: 'on' (default: the values the key holder decrypts are masked: statistical distance at most 2^-40 per refresh) or 'off' (the key holder sees the intermediate activations; warned on every run)" },
  },
  async run(args) {
    const file = onePositional(args, run, 'PLAN')
    const inFile = need(args, 'input', run)
    const outFile = str(args, 'output')
    const refresh = str(args, 'refresh') ?? 'none'
    if (refresh !== 'none' && refresh !== 'client') throw new UsageError(`--refresh must be 'none' or 'client', got '${refresh}'`, run)
    const refreshMask = str(args, 'refresh-mask') ?? 'on'
    if (refreshMask !== 'on' && refreshMask !== 'off') throw new UsageError(`--refresh-mask must be 'on' or 'off', got '${refreshMask}'`, run)
    const log = logger(args)
    if (outFile) checkWritable(outFile)
    const written = readJSONFile(file, 'plan') as CkksPlanFile
    if (written.format !== 'pic-ckks-plan') throw new PicError(`${file}: not a CKKS plan (format '${String((written as { format?: unknown }).format)}'); pic run executes plans from pic compile --backend ckks`)
    try {
      checkRunnable(written, { refresh, refreshMask })
      validatePlan(written)
    } catch (e) {
      throw new PicError(`${file}: ${(e as Error).message}`)
    }
    const x = readFiniteNpy(inFile)
    const labels = readLabels(str(args, 'labels'), x.shape[0])
    if (!outFile && !flag(args, 'json')) log('note: no --output: the decrypted outputs are not written, only the summary')
    const side = sidecarPath(file)
    let ref: ReturnType<typeof referenceGraph>
    let plan: CkksPlanFile
    try {
      const attached = attachSidecar(written, existsSync(side) ? new Uint8Array(readFileSync(side)) : undefined)
      plan = attached.plan
      ref = referenceGraph(plan, attached.graphBytes)
    } catch (e) {
      throw new PicError(`${side}: ${(e as Error).message}`)
    }
    const res = await runPlan(plan, x, { refresh, refreshMask, log, warn: (m) => process.stderr.write(`pic: ${m}\n`) })
    const y = res.outputs[0]
    if (outFile) writeNpy(outFile, y)
    let maxAbsErrorVsPlain: number | null = null
    let top1AgreementVsPlain: number | null = null
    let plaintextFinite = true
    if (ref) {
      // the reference graph takes the plan's K images at a time (the last group padded with zeros)
      const K = batchOf(plan)
      let plain = y
      if (K === 1) plain = interpret(ref, [x]).get(ref.outputs[0])!
      else {
        const out = new Float64Array(y.data.length)
        for (let gi = 0; gi < res.inferences; gi++) {
          const xg = { dtype: x.dtype, shape: [K, ...x.shape.slice(1)], data: groupInput(x, gi, K) }
          storeGroup(out, interpret(ref, [xg]).get(ref.outputs[0])!.data, gi, K, x.shape[0])
        }
        plain = { ...y, data: out }
      }
      if (plain.data.every(Number.isFinite)) {
        maxAbsErrorVsPlain = maxAbsDiff(plain, y)
        top1AgreementVsPlain = top1Agreement(plain, y)
      } else {
        plaintextFinite = false
        log('warning: the compiled model\'s own outputs are not finite on these inputs (its approximation diverges), so the encrypted ones mean nothing')
      }
    }
    const round = (v: number) => Math.round(v * 100) / 100
    const acc = labels ? labelAccuracy(y, labels) : undefined
    const summary = {
      backend: 'ckks',
      plan: file,
      images: res.images,
      batching: plan.batching,
      latencyMs: { keygen: round(res.latencyMs.keygen), encrypt: round(res.latencyMs.encrypt), evaluate: round(res.latencyMs.evaluate), decrypt: round(res.latencyMs.decrypt), setup: round(res.latencyMs.setup), refresh: round(res.latencyMs.refresh) },
      perImageEvaluateMs: round(res.perImageEvaluateMs),
      imagesPerInference: res.imagesPerInference,
      perInferenceEvaluateMs: round(res.perInferenceEvaluateMs),
      predictedEvaluateMs: plan.stats.estimatedTotalMs,
      // per inference and instruction kind, measured (a mulPlain or addPlain includes encoding its
      // plaintext when plaintexts are encoded on demand; the estimate counts that under 'encode') and estimated
      evaluateMsByOp: Object.fromEntries(Object.entries(res.msByKind).map(([k, v]) => [k, round(v / Math.max(1, res.inferences))])),
      estimatedMsByOp: plan.stats.estimatedMs,
      imagesPerSecond: res.perImageEvaluateMs > 0 ? Math.round((1000 / res.perImageEvaluateMs) * 1000) / 1000 : null,
      counts: res.counts,
      maxAbsErrorVsPlain,
      top1AgreementVsPlain,
      ...(acc ? { accuracy: acc.accuracy, correct: acc.correct } : {}),
      plaintextFinite,
      refresh: res.refresh,
      refreshMask: plan.stats.bootstraps === 0 ? null : refreshMask === 'off' ? 'off' : plan.refreshMask,
      keys: { rotations: res.keys.rotations, relin: res.keys.relin, estimatedBytes: res.keys.estimatedBytes, memoryGrowthBytes: res.memoryGrowthBytes },
      memory: { predictedPeakBytes: res.memory.predictedPeakBytes, sealHeapBytes: res.memory.sealHeapBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024, plaintexts: res.memory.plaintexts },
      ciphertextBytes: res.ciphertextBytes,
      params: { logN: plan.params.logN, primes: plan.params.primes, logScale: plan.params.logScale, security: plan.params.security },
    }
    if (flag(args, 'json')) printJSON(summary)
    else
      log(
        `ran ${res.images} image(s)${res.imagesPerInference > 1 ? ` in ${res.inferences} inference(s) of ${res.imagesPerInference}` : ''}: evaluate ${round(res.perImageEvaluateMs)} ms per image (keygen ${round(res.latencyMs.keygen)} ms, encrypt ${round(res.latencyMs.encrypt)} ms, decrypt ${round(res.latencyMs.decrypt)} ms in total)${maxAbsErrorVsPlain !== null ? `, max |error| vs plaintext ${maxAbsErrorVsPlain.toExponential(2)}` : ''}${accuracyText(acc)}`,
      )
  },
}

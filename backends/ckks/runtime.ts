/**
 * Executing a CKKS plan with node-seal: key generation (exactly the plan's rotation keys), server-side
 * plaintext encoding, then per image encryption of the client's packed input, evaluation of the
 * instruction list and decryption. Bootstraps run as client-aided refreshes (decrypt and re-encrypt
 * by the key holder) only when asked, masked as `pic serve` masks them (refresh.ts) unless
 * `refreshMask: 'off'`; their time and bytes are reported apart.
 */
import { PicError } from '../../ir/errors.js'
import { sizeOf, type Tensor } from '../../ir/tensor.js'
import type { CkksPlan, Instr } from './plan.js'
import { loadSeal, sealHeapBytes } from './seal.js'
import { KeyHolder } from './client.js'
import { ctBytes, planEvaluator, type Ct } from './evaluate.js'
import { validatePlan } from './validate.js'
import { batchOf, groupInput, storeGroup } from './simulate.js'
import { maskedRefreshGuard, NO_REFRESH_GUARD, RefreshMaskError, type RefreshGuard } from './refresh.js'
import type { PrivacyEnv } from './privacy.js'

export class CkksRunError extends PicError {}

export interface RunOptions {
  /** How to perform the plan's bootstraps: refuse (default) or client-aided refresh. */
  refresh?: 'none' | 'client'
  /**
   * Client-aided refreshes masked (default: 'on', the plan's `refreshMask`) or 'off' (the key holder
   * sees the intermediate values; the run logs a warning).
   */
  refreshMask?: 'on' | 'off'
  /** What the key holder decrypts at each refresh (the plaintext's centered integer coefficients), in order: for tests. */
  onRefreshView?: (instr: Instr, coefficients: bigint[]) => void
  /** Progress messages. */
  log?: (msg: string) => void
  /** Warnings that must not be silenced (unmasked refreshes); default `log`. */
  warn?: (msg: string) => void
}

export interface RunResult {
  outputs: Tensor[]
  images: number
  latencyMs: { setup: number; keygen: number; encrypt: number; evaluate: number; decrypt: number; refresh: number }
  /** Evaluation time per image: per inference divided by the images it packs. */
  perImageEvaluateMs: number
  /** Images packed into one inference (`pic compile --batch K`), inferences run, evaluation per inference. */
  imagesPerInference: number
  inferences: number
  perInferenceEvaluateMs: number
  /** Evaluation time of each inference (ms). */
  evaluateMsByImage: number[]
  counts: Record<string, number>
  /** Evaluation time by instruction kind, summed over images (ms). */
  msByKind: Record<string, number>
  refresh: { count: number; bytes: number; ms: number }
  keys: { rotations: number; relin: boolean; estimatedBytes: number }
  ciphertextBytes: { upload: number; download: number }
  /** Resident memory growth over key generation and plaintext encoding (the WebAssembly heap holding keys and plaintexts). */
  memoryGrowthBytes: number
  /** node-seal's WebAssembly heap after the run (its high-water mark) against the plan's predicted peak. */
  memory: { sealHeapBytes: number | null; predictedPeakBytes: number; plaintexts: 'resident' | 'on demand' }
}

/**
 * Progress per image on `log`: `image i/n` (and a note) when image i is done, the first once two
 * seconds have passed since the start, then at most one line per second (so never more than one per
 * image); none for the last image (the summary follows) nor in a run shorter than two seconds.
 */
export function imageProgress(log: (msg: string) => void, total: number, unit = 'image'): (done: number, note?: string) => void {
  let last = performance.now() + 1000
  return (done, note) => {
    const now = performance.now()
    if (done >= total || now - last < 1000) return
    last = now
    log(`${unit} ${done}/${total}${note ? ` ${note}` : ''}`)
  }
}

/** Refuse a plan that needs bootstraps unless client refresh is allowed. */
export function checkRunnable(plan: CkksPlan, opts: RunOptions = {}): void {
  if (plan.stats.bootstraps > 0 && opts.refresh !== 'client')
    throw new CkksRunError(
      `plan needs ${plan.stats.bootstraps} bootstrap(s) (depth ${plan.stats.depth} exceeds leveled parameters) and node-seal cannot bootstrap; run with --refresh client for client-aided refreshes`,
    )
  if (plan.stats.bootstraps > 0 && opts.refreshMask !== 'off' && !plan.refreshMask)
    throw new CkksRunError('the plan has client-aided refreshes but no refresh reserve for masking them (compiled before masked refreshes, or without them): recompile it, or run with --refresh-mask off (the key holder then sees the intermediate activations)')
}

/** The warning every run with unmasked refreshes prints. */
export const UNMASKED_REFRESH_WARNING = 'warning: refreshes unmasked (--refresh-mask off): the key holder sees the intermediate activations it refreshes'

/** Encrypt, evaluate and decrypt every image of the batch (first dim of `images`). */
export async function runPlan(plan: CkksPlan, images: Tensor, opts: RunOptions = {}): Promise<RunResult> {
  checkRunnable(plan, opts)
  let predicted: number
  try {
    predicted = validatePlan(plan).peakBytes
  } catch (e) {
    throw new CkksRunError((e as Error).message)
  }
  if (plan.inputs.length !== 1) throw new CkksRunError('plans with several inputs are not supported by the runtime')
  const inShape = plan.inputs[0].shape
  if (images.shape.length !== inShape.length || images.shape.slice(1).some((d, i) => d !== inShape[i + 1]))
    throw new CkksRunError(`input has shape [${images.shape.join(',')}], the plan expects [N,${inShape.slice(1).join(',')}]`)
  const seal = await loadSeal()
  const p = plan.params
  const log = opts.log ?? (() => {})
  const rss0 = process.memoryUsage().rss
  // the key holder (client side) and the evaluator (server side), the same code pic query and pic serve run, in one process
  log(`generating keys: ${plan.keys.rotations.length} rotation key(s)${plan.keys.relin ? ' + relinearization' : ''} at logN ${p.logN} (${plan.params.primes.length} primes)...`)
  const holder = new KeyHolder(seal, plan)
  const t0 = performance.now()
  const keys = holder.evaluationKeys()
  const keygen = holder.keygenMs + performance.now() - t0
  log(`keys: ${plan.keys.rotations.length} rotation key(s)${keys.rk ? ' + relinearization' : ''} in ${keygen.toFixed(0)} ms`)
  const sc = holder.sc
  if (plan.plaintexts !== 'on demand') log('encoding the plan\'s plaintexts (weights and masks)...')
  const evaluator = planEvaluator(plan, sc, holder.encoder, holder.ev)
  const heap = Math.max(0, process.memoryUsage().rss - rss0)

  const B = images.shape[0]
  const K = batchOf(plan)
  const outs = plan.outputs.map((o) => new Float64Array(B * sizeOf(o.shape.slice(1))))
  const counts: Record<string, number> = {}
  const msByKind: Record<string, number> = {}
  const lat = { setup: evaluator.setupMs, keygen, encrypt: 0, evaluate: 0, decrypt: 0, refresh: 0 }
  const refresh = { count: 0, bytes: 0, ms: 0 }
  let upload = 0
  const byImage: number[] = []
  let download = 0
  // the server's side of a refresh (mask, re-randomize with the key holder's public key), then the key holder's
  const guard: RefreshGuard = plan.stats.bootstraps === 0 || opts.refreshMask === 'off' ? NO_REFRESH_GUARD : maskedRefreshGuard(plan)
  if (plan.stats.bootstraps > 0 && !guard.masked) (opts.warn ?? log)(UNMASKED_REFRESH_WARNING)
  const encryptor = seal.Encryptor(sc.context, keys.pk)
  const env: PrivacyEnv = { seal, sc, encoder: holder.encoder, ev: holder.ev, encryptor, params: p }
  const localRefresh = (ct: Ct, i: Instr): Ct => {
    refresh.count++
    refresh.bytes += ctBytes(p.logN, evaluator.levelOf(i.args[0])) + ctBytes(p.logN, i.level)
    let round
    try {
      round = guard.open(ct, i, env)
    } catch (e) {
      throw e instanceof RefreshMaskError ? new CkksRunError(e.message) : e
    }
    try {
      if (opts.onRefreshView) opts.onRefreshView(i, holder.decryptCoefficients(round.sent))
      return round.close(holder.refresh(round.sent, i.level, i.scale))
    } finally {
      if (round.sent !== ct) round.sent.delete()
    }
  }
  let heapAfter: number | undefined
  const progress = imageProgress(log, Math.ceil(B / K), K > 1 ? 'inference' : 'image')
  try {
    for (let b = 0; b < Math.ceil(B / K); b++) {
      const regs = new Map<number, Ct>()
      const te = performance.now()
      const inp = plan.inputs[0]
      holder.encryptInput(groupInput(images, b, K)).forEach((ct, j) => {
        regs.set(inp.regs[j], ct)
        upload += ctBytes(p.logN, inp.levels[j])
      })
      lat.encrypt += performance.now() - te
      const { outputs, stats } = await evaluator.run(regs, { gk: keys.gk, rk: keys.rk }, localRefresh)
      for (const [k, v] of Object.entries(stats.counts)) counts[k] = (counts[k] ?? 0) + v
      for (const [k, v] of Object.entries(stats.msByKind)) msByKind[k] = (msByKind[k] ?? 0) + v
      byImage.push(stats.evaluateMs)
      lat.evaluate += stats.evaluateMs
      lat.refresh += stats.refreshMs
      refresh.ms += stats.refreshMs
      const td = performance.now()
      plan.outputs.forEach((o, k) => {
        download += ctBytes(p.logN, evaluator.levelOf(o.reg))
        storeGroup(outs[k], holder.decryptOutput(outputs[k], k), b, K, B)
      })
      for (const ct of new Set(outputs)) ct.delete()
      lat.decrypt += performance.now() - td
      progress(b + 1, `(evaluate ${stats.evaluateMs.toFixed(0)} ms)`)
    }
  } finally {
    heapAfter = sealHeapBytes()
    evaluator.dispose()
    encryptor.delete()
    keys.rk?.delete()
    keys.gk?.delete()
    holder.dispose()
  }
  return {
    outputs: plan.outputs.map((o, k) => ({ dtype: 'float64', shape: [B, ...o.shape.slice(1)], data: outs[k] })),
    images: B,
    latencyMs: lat,
    perImageEvaluateMs: B > 0 ? lat.evaluate / B : 0,
    imagesPerInference: K,
    inferences: Math.ceil(B / K),
    perInferenceEvaluateMs: B > 0 ? lat.evaluate / Math.ceil(B / K) : 0,
    evaluateMsByImage: byImage,
    counts,
    msByKind,
    refresh,
    keys: { rotations: plan.keys.rotations.length, relin: plan.keys.relin, estimatedBytes: plan.stats.keyBytes.total },
    ciphertextBytes: { upload, download },
    memoryGrowthBytes: heap,
    memory: { sealHeapBytes: heapAfter ?? null, predictedPeakBytes: predicted, plaintexts: plan.plaintexts === 'on demand' ? 'on demand' : 'resident' },
  }
}

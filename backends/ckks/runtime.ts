/**
 * Executing a CKKS plan with node-seal: key generation (exactly the plan's rotation keys), server-side
 * plaintext encoding, then per image encryption of the client's packed input, evaluation of the
 * instruction list and decryption. Bootstraps run as client-aided refreshes (decrypt and re-encrypt
 * by the key holder) only when asked; their time and bytes are reported apart.
 */
import { PicError } from '../../ir/errors.js'
import { sizeOf, type Tensor } from '../../ir/tensor.js'
import { constDense, type CkksPlan, type Instr } from './plan.js'
import { loadSeal, makeContext, sealHeapBytes, type SEALLibrary } from './seal.js'
import { validatePlan } from './validate.js'
import { batchOf, groupInput, packInput, storeGroup, unpackOutput } from './simulate.js'

export class CkksRunError extends PicError {}

export interface RunOptions {
  /** How to perform the plan's bootstraps: refuse (default) or client-aided refresh. */
  refresh?: 'none' | 'client'
  /** Progress messages. */
  log?: (msg: string) => void
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

type Ct = ReturnType<SEALLibrary['CipherText']>
type Pt = ReturnType<SEALLibrary['PlainText']>

function ctBytes(logN: number, level: number): number {
  return 2 * 2 ** logN * (level + 1) * 8
}

/** Refuse a plan that needs bootstraps unless client refresh is allowed. */
export function checkRunnable(plan: CkksPlan, opts: RunOptions = {}): void {
  if (plan.stats.bootstraps > 0 && opts.refresh !== 'client')
    throw new CkksRunError(
      `plan needs ${plan.stats.bootstraps} bootstrap(s) (depth ${plan.stats.depth} exceeds leveled parameters) and node-seal cannot bootstrap; run with --refresh client for client-aided refreshes`,
    )
}

/** Encrypt, evaluate and decrypt every image of the batch (first dim of `images`). */
export async function runPlan(plan: CkksPlan, images: Tensor, opts: RunOptions = {}): Promise<RunResult> {
  checkRunnable(plan, opts)
  let predicted: number
  try {
    predicted = validatePlan(plan).peakBytes
  } catch (e) {
    throw new CkksRunError((e as Error).message)
  }
  const onDemand = plan.plaintexts === 'on demand'
  if (plan.inputs.length !== 1) throw new CkksRunError('plans with several inputs are not supported by the runtime')
  const inShape = plan.inputs[0].shape
  if (images.shape.length !== inShape.length || images.shape.slice(1).some((d, i) => d !== inShape[i + 1]))
    throw new CkksRunError(`input has shape [${images.shape.join(',')}], the plan expects [N,${inShape.slice(1).join(',')}]`)
  const seal = await loadSeal()
  const p = plan.params
  const sc = makeContext(seal, p)
  const got = sc.primes.map(String)
  if (got.join(',') !== p.primeValues.slice(0, got.length).join(',')) throw new CkksRunError('SEAL chose other primes than the plan assumed')
  const S = p.slots
  const log = opts.log ?? (() => {})
  const rss0 = process.memoryUsage().rss
  const t0 = performance.now()
  const kg = seal.KeyGenerator(sc.context)
  const pk = kg.createPublicKey()
  const sk = kg.secretKey()
  const rk = plan.keys.relin ? kg.createRelinKeys() : undefined
  const gk = plan.keys.rotations.length > 0 ? kg.createGaloisKeys(Int32Array.from(plan.keys.rotations)) : undefined
  const keygen = performance.now() - t0
  log(`keys: ${plan.keys.rotations.length} rotation key(s)${rk ? ' + relinearization' : ''} in ${keygen.toFixed(0)} ms`)
  const encoder = seal.CKKSEncoder(sc.context)
  const encryptor = seal.Encryptor(sc.context, pk)
  const decryptor = seal.Decryptor(sc.context, sk)
  const ev = seal.Evaluator(sc.context)

  const t1 = performance.now()
  const level = new Map<number, number>()
  for (const i of plan.instructions) level.set(i.dst, i.level)
  plan.inputs[0].regs.forEach((r, j) => level.set(r, plan.inputs[0].levels[j]))
  const pts = new Map<string, Pt>()
  const dense = new Map<string, Float64Array>()
  /** Encode at the top level, then mod-switch to lv; `shrink` gives the buffer back (kept plaintexts). */
  const encodeAt = (v: Float64Array, scale: number, lv: number, shrink = false): Pt => {
    const pt = encoder.encode(v, scale)!
    if (lv < sc.parmsIds.length - 1) {
      ev.plainModSwitchTo(pt, sc.parmsIds[lv], pt)
      if (shrink) pt.shrinkToFit()
    }
    return pt
  }
  const ptFor = (i: Instr): Pt => {
    const lv = level.get(i.args[0])!
    const scale = i.op === 'mulPlain' ? i.ptScale! : i.scale
    if (onDemand) return encodeAt(constDense(plan.constants[i.pt!], S), scale, lv)
    const key = `${i.pt}@${lv}@${scale}`
    let pt = pts.get(key)
    if (!pt) {
      let v = dense.get(i.pt!)
      if (!v) dense.set(i.pt!, (v = constDense(plan.constants[i.pt!], S)))
      pts.set(key, (pt = encodeAt(v, scale, lv, true)))
    }
    return pt
  }
  if (!onDemand) for (const i of plan.instructions) if (i.op === 'mulPlain' || i.op === 'addPlain') ptFor(i)
  dense.clear()
  const setup = performance.now() - t1
  const heap = Math.max(0, process.memoryUsage().rss - rss0)

  const lastUse = new Map<number, number>()
  plan.instructions.forEach((i, k) => i.args.forEach((a) => lastUse.set(a, k)))
  const outRegs = new Set(plan.outputs.map((o) => o.reg))
  const B = images.shape[0]
  const K = batchOf(plan)
  const outs = plan.outputs.map((o) => new Float64Array(B * sizeOf(o.shape.slice(1))))
  const counts: Record<string, number> = {}
  const msByKind: Record<string, number> = {}
  const lat = { setup, keygen, encrypt: 0, evaluate: 0, decrypt: 0, refresh: 0 }
  const refresh = { count: 0, bytes: 0, ms: 0 }
  let upload = 0
  const byImage: number[] = []
  let download = 0
  for (let b = 0; b < Math.ceil(B / K); b++) {
    const regs = new Map<number, Ct>()
    const te = performance.now()
    const x = groupInput(images, b, K)
    const inp = plan.inputs[0]
    packInput(plan, 0, x).forEach((v, j) => {
      const pt = encodeAt(v, inp.scale, inp.levels[j])
      regs.set(inp.regs[j], encryptor.encrypt(pt)!)
      pt.delete()
      upload += ctBytes(p.logN, inp.levels[j])
    })
    lat.encrypt += performance.now() - te
    const tv = performance.now()
    let refreshMs = 0
    for (let k = 0; k < plan.instructions.length; k++) {
      const i = plan.instructions[k]
      const a = regs.get(i.args[0])
      if (!a) throw new CkksRunError(`internal: register ${i.args[0]} is not live at instruction ${k} (${i.op})`)
      let r: Ct
      const ti = performance.now()
      switch (i.op) {
        case 'rotate':
          r = ev.rotateVector(a, i.step!, gk!)!
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
          const dec = decryptor.decrypt(a)!
          const vals = encoder.decode(dec)
          dec.delete()
          const pt = encodeAt(Float64Array.from(vals), i.scale, i.level)
          r = encryptor.encrypt(pt)!
          pt.delete()
          refresh.count++
          refresh.bytes += ctBytes(p.logN, level.get(i.args[0])!) + ctBytes(p.logN, i.level)
          refreshMs += performance.now() - tr
          break
        }
      }
      if (Math.abs(r.scale - i.scale) > 1e-9 * i.scale) throw new CkksRunError(`internal: instruction ${k} (${i.op}) has scale 2^${Math.log2(r.scale)}, the plan says 2^${Math.log2(i.scale)}`)
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
    const evalMs = performance.now() - tv - refreshMs
    byImage.push(evalMs)
    lat.evaluate += evalMs
    lat.refresh += refreshMs
    refresh.ms += refreshMs
    const td = performance.now()
    plan.outputs.forEach((o, k) => {
      const ct = regs.get(o.reg)!
      download += ctBytes(p.logN, level.get(o.reg)!)
      const dec = decryptor.decrypt(ct)!
      const vals = encoder.decode(dec)
      dec.delete()
      storeGroup(outs[k], unpackOutput(plan, k, vals), b, K, B)
    })
    lat.decrypt += performance.now() - td
    for (const ct of regs.values()) ct.delete()
  }
  const heapAfter = sealHeapBytes()
  for (const pt of pts.values()) pt.delete()
  for (const o of [encoder, encryptor, decryptor, ev, pk, sk, rk, gk, kg]) o?.delete()
  sc.context.delete()
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
    memory: { sealHeapBytes: heapAfter ?? null, predictedPeakBytes: predicted, plaintexts: onDemand ? 'on demand' : 'resident' },
  }
}

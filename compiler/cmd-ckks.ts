/**
 * The CKKS service from the command line (the commands themselves are `pic serve` and `pic query` in
 * cmd-mpc.ts, which dispatch here by the plan's kind):
 *   pic compile MODEL --backend ckks -o plan.json     also writes the public client part plan.client.json
 *   pic serve MODEL --plan plan.json --port P [--once]   serves the plan (its weights stay on the server)
 *   pic query plan.client.json --connect HOST:P --input X.npy [--output Y.npy] [--refresh client|none] [--json]
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { attachSidecar, type CkksPlanFile } from '../backends/ckks/index.js'
import { clientPartOf, NO_REFRESH_GUARD, parseClientPart, queryCkks, startCkksServer } from '../backends/ckks/service.js'
import type { Sidecar } from '../ir/serialize.js'
import { flag, logger, need, printJSON, str, UsageError, type Command, type ParsedArgs } from './cli-kit.js'
import { PicError } from './errors.js'
import { loadModel, readJSONFile, sidecarPath } from './model.js'
import { readNpy, writeNpy } from './npy.js'
import { announce, type ListenOn } from './cmd-mpc.js'
import { accuracyText, labelAccuracy, readLabels } from './cmd-run.js'
import type { Trust } from '../backends/mpc/tls.js'

/** plan.json -> plan.client.json */
export function clientPartPath(planFile: string): string {
  return planFile.endsWith('.json') ? `${planFile.slice(0, -5)}.client.json` : `${planFile}.client.json`
}

/** After `pic compile -o FILE`: a CKKS plan also gets its client part (nothing for other backends). */
export function writeCompanions(backend: string, out: string, plan: unknown, sidecar: Sidecar | undefined): void {
  if (backend !== 'ckks') return
  const chunks = (sidecar ?? []) as Uint8Array[]
  const bytes = chunks.length > 0 ? Buffer.concat(chunks) : undefined
  const { plan: attached } = attachSidecar(plan as CkksPlanFile, bytes)
  writeFileSync(clientPartPath(out), JSON.stringify(clientPartOf(attached), null, 1) + '\n')
}

/** A written CKKS plan with its sidecar's constants attached. */
export function readCkksPlan(file: string, written: CkksPlanFile): CkksPlanFile {
  const side = sidecarPath(file)
  try {
    return attachSidecar(written, existsSync(side) ? new Uint8Array(readFileSync(side)) : undefined).plan
  } catch (e) {
    throw new PicError(`${side}: ${(e as Error).message}`)
  }
}

/** Resolves on SIGINT or SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
}

/** `pic serve MODEL --plan PLAN` with a CKKS plan. */
export async function serveCkks(args: ParsedArgs, cmd: Command, model: string, file: string, written: CkksPlanFile, listen: ListenOn): Promise<number> {
  const log = logger(args)
  log(`loading the plan ${file} and its constants...`)
  const plan = readCkksPlan(file, written)
  // the plan is the server's compiled model; MODEL must be the model it was compiled from
  const g = loadModel(model)
  const reference = (plan as { reference?: { name?: string } }).reference
  if (reference?.name !== undefined && g.name !== reference.name && plan.model !== g.name)
    throw new PicError(`${file}: the plan was compiled from model '${plan.model}', not ${model} ('${g.name}')`)
  if (str(args, 'dealer') !== undefined) log('note: --dealer is ignored for CKKS plans (no offline phase)')
  let ended: (e: Error | undefined) => void = () => {}
  const firstEnd = new Promise<Error | undefined>((resolve) => (ended = resolve))
  const refreshMask = str(args, 'refresh-mask') ?? 'on'
  if (refreshMask !== 'on' && refreshMask !== 'off') throw new UsageError(`--refresh-mask must be 'on' or 'off', got '${refreshMask}'`, cmd)
  // unmasked refreshes are announced on stderr whatever --quiet says: at start and at every session
  const warn = (m: string) => (m.includes('refreshes unmasked') ? process.stderr.write(`pic: ${m}\n`) : log(m))
  log(`preparing the server: ${Object.keys(plan.constants).length} constant(s), ${plan.plaintexts === 'on demand' ? 'plaintexts encoded on demand' : 'encoding the plaintexts (weights and masks) once'}, ${plan.instructions.length} instructions per inference...`)
  const h = await startCkksServer(plan, { ...listen, log: warn, onSessionEnd: (e) => ended(e), ...(refreshMask === 'off' ? { refreshGuard: NO_REFRESH_GUARD } : {}) })
  log(`client part fingerprint ${h.clientPart.fingerprint}`)
  announce(args, 'ckks server', h.fingerprint, h.port)
  void cmd
  const failed = flag(args, 'once') ? await Promise.race([firstEnd, interrupted().then(() => undefined)]) : await interrupted().then(() => undefined)
  await h.close()
  return failed ? 1 : 0
}

/** `pic query CLIENT_PART --connect HOST:P --input X.npy` with a CKKS client part. */
export async function queryCkksCommand(args: ParsedArgs, cmd: Command, file: string, json: unknown, timeoutMs: number | undefined, sec: { insecurePlaintext: boolean; serverTrust: Trust }): Promise<void> {
  let part: ReturnType<typeof parseClientPart>
  try {
    part = parseClientPart(json, file)
  } catch (e) {
    throw new PicError((e as Error).message)
  }
  const refresh = str(args, 'refresh') ?? 'client'
  if (refresh !== 'client' && refresh !== 'none') throw new UsageError(`--refresh must be 'client' or 'none', got '${refresh}'`, cmd)
  const x = readNpy(need(args, 'input', cmd))
  const labels = readLabels(str(args, 'labels'), x.shape[0])
  const log = logger(args)
  if (str(args, 'dealer-fingerprint') !== undefined) log('note: --dealer-fingerprint is ignored for CKKS client parts (no dealer)')
  const { output, report } = await queryCkks(part, x, { connect: need(args, 'connect', cmd), timeoutMs, refresh, log, compareSerialization: flag(args, 'key-sizes'), insecurePlaintext: sec.insecurePlaintext, serverTrust: sec.serverTrust })
  const out = str(args, 'output')
  if (out) writeNpy(out, output)
  const acc = labels ? labelAccuracy(output, labels) : undefined
  if (flag(args, 'json')) printJSON({ backend: 'ckks', clientPart: file, ...report, ...(acc ? { accuracy: acc.accuracy, correct: acc.correct } : {}) })
  else
    log(
      `${report.images} image(s): keys ${report.bytes.keys.total} B once, ${report.bytes.perImage.up} B up and ${report.bytes.perImage.down} B down per image, ${report.latencyMs.perImage} ms per image${report.bytes.refreshes ? `, ${report.bytes.refreshes} refresh(es)` : ''}${accuracyText(acc)}`,
    )
}

export { readJSONFile }

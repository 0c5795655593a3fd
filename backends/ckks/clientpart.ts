/**
 * The public client part of a CKKS plan (`plan.client.json`, written beside `plan.json` by
 * `pic compile --backend ckks -o plan.json`): what a client needs to generate keys, pack and encrypt
 * its input, answer refresh requests and decode the outputs, and nothing the server keeps private:
 * parameters, the Galois steps and relinearization the plan needs, the input layout (slot -> element
 * map, levels, scale), the output slots, the refreshes' count, and a fingerprint of all of it that the
 * server recomputes from its own plan. No instruction, no weight, no constant, no sidecar reference.
 */
import { createHash } from 'node:crypto'
import { b64Int32, constIndex, float64Of, fromB64Int32, int32Of, type CkksPlan, type ConstVector } from './plan.js'

export const CLIENT_FORMAT = 'pic-ckks-client'

export interface ClientPart {
  format: typeof CLIENT_FORMAT
  version: 1
  model: string
  params: CkksPlan['params']
  keys: { rotations: number[]; relin: boolean }
  inputs: { name: string; shape: number[]; levels: number[]; scale: number; slotMap: string; layout: string }[]
  outputs: { name: string; shape: number[]; level: number; slots: string; layout: string }[]
  /** Client-aided refreshes per inference: each is a round trip during evaluation. */
  refreshes: number
  batching: string
  /**
   * A commitment to the served plan (sha256 of its instructions and constants, 32 hex digits), so a
   * client part of another model with the same layout is refused; it reveals no weight.
   */
  planDigest: string
  /** Only layout maps (slot <-> element indices), base64 Int32: no weights. */
  constants: Record<string, { kind: 'index'; length: number; data: string }>
  /** sha256 (hex, 32 digits) of the canonical JSON of everything above. */
  fingerprint: string
}

/** The level of every output register, from the instruction list (an output is an instruction's result or an input). */
function outputLevel(plan: CkksPlan, reg: number): number {
  for (let k = plan.instructions.length - 1; k >= 0; k--) if (plan.instructions[k].dst === reg) return plan.instructions[k].level
  const inp = plan.inputs.find((i) => i.regs.includes(reg))
  return inp ? inp.levels[inp.regs.indexOf(reg)] : 0
}

export function clientFingerprint(part: Omit<ClientPart, 'fingerprint'>): string {
  return createHash('sha256').update(JSON.stringify(part)).digest('hex').slice(0, 32)
}

/** sha256 of a plan's instructions and constants (in memory). */
export function planDigest(plan: CkksPlan): string {
  const h = createHash('sha256').update(JSON.stringify(plan.instructions))
  for (const id of Object.keys(plan.constants).sort()) {
    const c = plan.constants[id]
    h.update(`${id}:${c.kind}:${c.length}`)
    for (const a of [c.slots && int32Of(c.slots), c.values && float64Of(c.values), c.data && int32Of(c.data)]) if (a) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
  }
  return h.digest('hex').slice(0, 32)
}

/** The client part of a plan whose constants are in memory (as compiled, or read back with its sidecar). */
export function clientPartOf(plan: CkksPlan): ClientPart {
  const constants: ClientPart['constants'] = {}
  const index = (id: string) => {
    const c = plan.constants[id]
    constants[id] = { kind: 'index', length: c.length, data: b64Int32(constIndex(c)) }
    return id
  }
  const body: Omit<ClientPart, 'fingerprint'> = {
    format: CLIENT_FORMAT,
    version: 1,
    model: plan.model,
    params: plan.params,
    keys: { rotations: [...plan.keys.rotations], relin: plan.keys.relin },
    inputs: plan.inputs.map((i) => ({ name: i.name, shape: i.shape, levels: i.levels, scale: i.scale, slotMap: index(i.slotMap), layout: i.layout })),
    outputs: plan.outputs.map((o) => ({ name: o.name, shape: o.shape, level: outputLevel(plan, o.reg), slots: index(o.slots), layout: o.layout })),
    refreshes: plan.stats.bootstraps,
    batching: plan.batching,
    planDigest: planDigest(plan),
    constants,
  }
  return { ...body, fingerprint: clientFingerprint(body) }
}

/** Check a client part read from a file: its format and that its fingerprint covers its content. */
export function parseClientPart(json: unknown, file: string): ClientPart {
  const p = json as ClientPart
  if (!p || typeof p !== 'object' || p.format !== CLIENT_FORMAT) throw new Error(`${file}: not a CKKS client part (format '${String((p as { format?: unknown })?.format)}'); pic compile --backend ckks -o plan.json writes plan.client.json`)
  const { fingerprint, ...body } = p
  if (clientFingerprint(body) !== fingerprint) throw new Error(`${file}: the client part does not match its fingerprint (edited or truncated)`)
  return p
}

/** The client part as a plan-shaped view for the packing helpers (inputs, outputs, params, index constants). */
export function layoutView(part: ClientPart): Pick<CkksPlan, 'inputs' | 'outputs' | 'params' | 'constants'> {
  const constants: Record<string, ConstVector> = {}
  for (const [id, c] of Object.entries(part.constants)) constants[id] = { kind: 'index', length: c.length, data: fromB64Int32(c.data) }
  return {
    params: part.params,
    constants,
    inputs: part.inputs.map((i, k) => ({ ...i, regs: i.levels.map((_, j) => -1 - k * 1000 - j) })),
    outputs: part.outputs.map((o) => ({ name: o.name, shape: o.shape, reg: -1, slots: o.slots, layout: o.layout })),
  }
}

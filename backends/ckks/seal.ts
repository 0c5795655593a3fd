/**
 * Loading node-seal (6.0.x, WebAssembly) once per process, and building a SEAL context for a plan's
 * parameters, with the parms ids of every level.
 */
import SEALModule from 'node-seal'
import type { SEALLibrary } from 'node-seal/implementation/seal.js'
import type { CkksParams } from './params.js'

export type { SEALLibrary }
export type Context = ReturnType<SEALLibrary['Context']>
export type ParmsIdType = Context['firstParmsId']

const SEAL = ((SEALModule as unknown as { default?: unknown }).default ?? SEALModule) as () => Promise<SEALLibrary>

let loading: Promise<SEALLibrary> | undefined
interface WasmMemory {
  buffer: ArrayBuffer
}
let memory: WasmMemory | undefined

/**
 * Load node-seal once. Its WebAssembly memory is caught on the way (the instance's exported Memory)
 * so that `sealHeapBytes` can report how far the heap has grown: the figure node-seal's 4 GiB limit applies to.
 */
export function loadSeal(): Promise<SEALLibrary> {
  if (!loading) {
    type Inst = { exports?: Record<string, unknown> }
    const wasm = (globalThis as unknown as { WebAssembly: { instantiate: (...a: unknown[]) => Promise<unknown>; Memory: new (...a: never[]) => WasmMemory } }).WebAssembly
    const original = wasm.instantiate
    wasm.instantiate = async (...a: unknown[]) => {
      const r = (await original.apply(wasm, a)) as { instance?: Inst } & Inst
      const inst = r.instance ?? r
      for (const v of Object.values(inst.exports ?? {})) if (v instanceof wasm.Memory) memory = v
      return r
    }
    loading = SEAL().finally(() => {
      wasm.instantiate = original
    })
  }
  return loading
}

/** Bytes of node-seal's WebAssembly heap so far (it only grows: its high-water mark), when known. */
export function sealHeapBytes(): number | undefined {
  return memory?.buffer.byteLength
}

export interface SealContext {
  seal: SEALLibrary
  context: Context
  /** parms id of level l (l + 1 data primes), l = 0 .. L. */
  parmsIds: ParmsIdType[]
  /** The data primes as SEAL chose them. */
  primes: bigint[]
}

export function securityOf(seal: SEALLibrary, bits: number): unknown {
  return bits === 256 ? seal.SecurityLevel.tc256 : bits === 192 ? seal.SecurityLevel.tc192 : seal.SecurityLevel.tc128
}

export function makeContext(seal: SEALLibrary, p: CkksParams): SealContext {
  const N = 2 ** p.logN
  const parms = seal.EncryptionParameters(seal.SchemeType.ckks)
  parms.setPolyModulusDegree(N)
  parms.setCoeffModulus(seal.CoeffModulus.Create(N, Int32Array.from(p.primes)))
  const context = seal.Context(parms, true, securityOf(seal, p.security) as never)
  if (!context.parametersSet()) throw new Error('SEAL rejected the CKKS parameters')
  const chain: ParmsIdType[] = []
  let cd = context.firstContextData
  chain.push(cd.parmsId)
  while (cd.chainIndex > 0) {
    cd = cd.nextContextData
    chain.push(cd.parmsId)
  }
  const ids = chain.reverse()
  const all = Array.from(parms.coeffModulus as BigUint64Array)
  parms.delete()
  return { seal, context, parmsIds: ids, primes: all.slice(0, all.length - 1) }
}

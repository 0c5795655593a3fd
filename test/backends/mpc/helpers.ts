/** Shared helpers for the MPC backend tests: fixture loading, the mpc pipeline, loopback parties. */
import { readFileSync } from 'node:fs'
import { importModel } from '../../../compiler/onnx-import.js'
import { readNpy } from '../../../compiler/npy.js'
import type { Graph } from '../../../ir/graph.js'
import type { Tensor } from '../../../ir/tensor.js'
import { runPipeline, passContext } from '../../../passes/pass.js'
import { mpcBackend, runDealer, runServe, type DealerHandle, type MpcSchedule, type ServerHandle } from '../../../backends/mpc/index.js'

export const DIGITS = 'test/fixtures/digits'

export function loadModel(name: string): Graph {
  return importModel(readFileSync(`${DIGITS}/${name}.onnx`), { file: `${name}.onnx` })
}

/** The model after the mpc backend's pipeline. */
export function compiled(name: string): Graph {
  return runPipeline(loadModel(name), mpcBackend.pipeline({}), passContext({}))
}

export function images(n: number, from = 0): { x: Tensor; ref: (m: string) => Tensor } {
  const all = readNpy(`${DIGITS}/test_x.npy`)
  const x: Tensor = { dtype: all.dtype, shape: [n, 1, 8, 8], data: all.data.slice(from * 64, (from + n) * 64) }
  return { x, ref: (m) => readNpy(`${DIGITS}/ref_${m}.npy`) }
}

export interface Parties {
  dealer: DealerHandle
  server: ServerHandle
  close(): Promise<void>
}

/** A dealer and a server over TLS 1.3 (the server pins the dealer), or plain TCP with `insecurePlaintext`. */
export async function parties(g: Graph, s: MpcSchedule, timeoutMs = 10_000, o: { insecurePlaintext?: boolean } = {}): Promise<Parties> {
  const dealer = await runDealer({ port: 0, timeoutMs, insecurePlaintext: o.insecurePlaintext })
  const server = await runServe(g, s, { port: 0, dealer: `127.0.0.1:${dealer.port}`, timeoutMs, insecurePlaintext: o.insecurePlaintext, dealerTrust: { fingerprint: dealer.fingerprint } })
  return {
    dealer,
    server,
    close: async () => {
      await server.close()
      await dealer.close()
    },
  }
}

export function argmax(d: Float64Array, off: number, n: number): number {
  let b = 0
  for (let j = 1; j < n; j++) if (d[off + j] > d[off + b]) b = j
  return b
}

import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { importModel } from '../../compiler/onnx-import.js'
import { readNpy } from '../../compiler/npy.js'
import { interpret } from '../../ir/interpret.js'
import { printGraph } from '../../ir/print.js'
import { graphFromJSON, graphToJSON } from '../../ir/serialize.js'
import { digits, MODELS } from '../helpers.js'

describe('IR JSON', () => {
  it.each(MODELS)('%s round-trips exactly through JSON text and the sidecar', (m) => {
    const g = importModel(readFileSync(digits(`${m}.onnx`)), { file: m })
    const { json, sidecar } = graphToJSON(g)
    const text = JSON.stringify(json)
    expect(text.length).toBeLessThan(64 * 1024)
    const back = graphFromJSON(JSON.parse(text), sidecar)
    expect(printGraph(back)).toBe(printGraph(g))
    const x = readNpy(digits('test_x.npy'))
    const one = { ...x, shape: [1, 1, 8, 8], data: x.data.slice(0, 64) }
    expect(interpret(back, [one]).get('logits')!.data).toEqual(interpret(g, [one]).get('logits')!.data)
  })

  it('refuses a sidecar that belongs to another graph or is cut short', () => {
    const g = importModel(readFileSync(digits('mlp_relu.onnx')), { file: 'mlp_relu' })
    const { json, sidecar } = graphToJSON(g)
    const bytes = Buffer.concat(sidecar)
    expect(bytes.length).toBe(json.sidecarBytes)
    const bad = new Uint8Array(bytes)
    bad[0] ^= 1
    expect(() => graphFromJSON(json, bad)).toThrow('a tensor in the sidecar does not match its fingerprint')
    expect(() => graphFromJSON(json, bytes.subarray(0, bytes.length - 8))).toThrow(`the sidecar holds ${bytes.length - 8} bytes, the IR refers to ${bytes.length}`)
  })
})

// Compile the digits CNN (x*x activations) for CKKS, run it encrypted with node-seal on 16 test
// images and print the accuracy against their labels. Run: node examples/ckks.mjs
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { compile, importModel, readNpy, runPlan } from '@pic-compiler/pic'

const here = (name) => fileURLToPath(new URL(name, import.meta.url))
const model = importModel(readFileSync(here('cnn_square.onnx')), { file: 'cnn_square.onnx' })
const images = readNpy(here('digits_x.npy')) // [16, 1, 8, 8], pixels in [0, 1]
const labels = readNpy(here('digits_y.npy')) // [16], digits 0..9

const { runnable, summary } = await compile(model, 'ckks', { calib: readNpy(here('digits_calib.npy')) })
const { outputs, perImageEvaluateMs } = await runPlan(runnable, images) // keygen, encrypt, evaluate, decrypt
const logits = outputs[0] // [16, 10], decrypted
const argmax = (i) => logits.data.subarray(10 * i, 10 * i + 10).reduce((b, v, k, row) => (v > row[b] ? k : b), 0)
let correct = 0
for (let i = 0; i < labels.shape[0]; i++) if (argmax(i) === labels.data[i]) correct++
console.log(`CKKS logN ${summary.params.logN}: ${correct}/${labels.shape[0]} correct (${((100 * correct) / labels.shape[0]).toFixed(1)}%), ${perImageEvaluateMs.toFixed(0)} ms per image`)

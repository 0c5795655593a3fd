/**
 * The `pic` command line: dispatches to the command table, prints help and the version, and turns
 * every failure into one line `pic: error: ...` on stderr (a stack trace only with --debug).
 * Exit codes: 0 success, 1 an error (bad input, a failed run, a file that cannot be written),
 * 2 a usage error (unknown command or option, a missing or contradictory option; near misses get
 * "did you mean"). A reader that closes stdout early (`pic ... | head`) ends the command quietly
 * with exit 0 (one that closes stderr early only loses the messages).
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { COMMANDS } from './commands.js'
import { didYouMean, helpText, parse, UsageError } from './cli-kit.js'
import { PicError } from './errors.js'

function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2
  return [
    'pic: the private-inference compiler (ONNX -> CKKS plans and two-party MPC schedules)',
    '',
    'usage: pic COMMAND [options]   (pic help COMMAND or pic COMMAND --help for its options; pic --version)',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    '',
    'exit status: 0 success, 1 error, 2 usage error',
    '',
  ].join('\n')
}

/** The version in the package.json above this module (dist/compiler/cli.js -> package.json). */
function version(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const f = path.join(dir, 'package.json')
    if (existsSync(f)) return (JSON.parse(readFileSync(f, 'utf8')) as { version: string }).version
    if (path.dirname(dir) === dir) return 'unknown'
  }
}

function findCommand(name: string) {
  if (name.startsWith('-')) throw new UsageError(`unknown option '${name}' before a command${didYouMean(name, ['--version', '--help'])}`)
  const cmd = COMMANDS.find((c) => c.name === name)
  if (!cmd) throw new UsageError(`unknown command '${name}'${didYouMean(name, [...COMMANDS.map((c) => c.name), 'help', 'version'])}`)
  return cmd
}

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug')
  const [name, ...rest] = argv
  try {
    if (!name || name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
      process.stdout.write(mainHelp())
      return name ? 0 : 2
    }
    if (name === '--version' || name === '-V' || name === 'version') {
      process.stdout.write(`pic ${version()}\n`)
      return 0
    }
    if (name === 'help') {
      if (rest.length > 1) throw new UsageError(`unexpected argument '${rest[1]}' (pic help COMMAND)`)
      process.stdout.write(helpText(findCommand(rest[0])))
      return 0
    }
    const cmd = findCommand(name)
    const args = parse(cmd, rest)
    if (args.values.help) {
      process.stdout.write(helpText(cmd))
      return 0
    }
    const code = await cmd.run(args)
    return typeof code === 'number' ? code : 0
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pic: error: ${e.message}\n${e.cmd ? `usage: ${e.cmd.usage}\n` : 'run pic --help for the commands\n'}`)
      return 2
    }
    const known = e instanceof PicError
    const msg = e instanceof Error ? e.message : String(e)
    process.stderr.write(`pic: error: ${known ? '' : 'internal error: '}${msg.split('\n')[0]}\n`)
    if (debug && e instanceof Error) process.stderr.write(`${e.stack}\n`)
    return 1
  }
}

// a closed reader of stdout (`pic ... | head`) is not an error: end quietly, exit 0; a closed
// reader of stderr loses the messages only (the exit code still tells how the command ended)
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0)
  throw e
})
process.stderr.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e
})

const code = await main(process.argv.slice(2))
process.exitCode = code

// A long-lived peer process speaking JSON lines (see benchmark/peers/*.py), so
// the peer loads its model once and is timed warm, like our addon.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export class Peer {
  constructor(script, python = process.env.PYTHON ?? 'python3') {
    this.proc = spawn(python, [script], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]()
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve))
  }

  async request(obj) {
    this.proc.stdin.write(JSON.stringify(obj) + '\n')
    const { value, done } = await Promise.race([
      this.lines.next(),
      this.exited.then((code) => {
        throw new Error(`peer exited with code ${code} during ${obj.op}`)
      }),
    ])
    if (done) throw new Error(`peer closed its output during ${obj.op}`)
    return JSON.parse(value)
  }

  async close() {
    this.proc.stdin.end(JSON.stringify({ op: 'quit' }) + '\n')
    await this.exited
  }
}

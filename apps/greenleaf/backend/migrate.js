// Applies the database migrations (`medusa db:migrate`) while holding a PostgreSQL advisory lock, so
// that hosts starting together migrate one after the other: two concurrent runs on a new database
// make one fail ("Payment provider with id: pp_system_default, already exists"). The lock belongs to
// this connection: it is released when the run ends, or when this process dies.
const { spawnSync } = require("node:child_process")
const { Client } = require("pg")

const LOCK = 74_601_221 // this application's migrations; any number other locks do not use

async function main() {
  const client = new Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    console.log("waiting for the migration lock")
    await client.query("SELECT pg_advisory_lock($1)", [LOCK])
    const run = spawnSync("./node_modules/.bin/medusa", ["db:migrate"], { stdio: "inherit" })
    process.exitCode = run.status ?? 1
  } finally {
    await client.end() // ends the session, which releases the lock
  }
}

main().catch((error) => {
  console.error(`migrations: ${error.message}`)
  process.exitCode = 1
})

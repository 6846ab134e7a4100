// The counter in a PostgreSQL row, read with SELECT and written with a
// fenced UPDATE: a write carrying a fencing token older than the last one
// applied is refused, so a holder that lost its lock (paused past its lease,
// cut off from the server) cannot overwrite a newer holder's work.
const { Pool } = require('pg');

const TABLE = 'interlock_demo_counter';

async function openPostgresStore(url, key) {
  const pool = new Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000 });
  pool.on('error', () => {}); // an idle connection dropped; the next query reconnects
  const command = async (fn) => {
    try {
      return await fn();
    } catch (err) {
      throw new Error(`PostgreSQL ${url}: ${err.message}`, { cause: err });
    }
  };
  await command(async () => {
    await pool.query(
      `CREATE TABLE IF NOT EXISTS ${TABLE} (name text PRIMARY KEY, value bigint NOT NULL, token numeric NOT NULL)`,
    );
    await pool.query(`INSERT INTO ${TABLE} VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING`, [key]);
  }).catch(async (err) => {
    await pool.end();
    // Two creators at once: one of them meets the other's table as a unique violation.
    if (err.cause?.code !== '23505') throw err;
    return openPostgresStore(url, key);
  });
  return {
    describe: `PostgreSQL ${url} table ${TABLE} row '${key}' (fenced writes)`,
    read: () =>
      command(async () =>
        Number((await pool.query(`SELECT value FROM ${TABLE} WHERE name = $1`, [key])).rows[0]?.value ?? 0),
      ),
    async write(value, token) {
      const t = token === undefined ? null : String(token);
      const r = await command(() =>
        pool.query(
          `UPDATE ${TABLE} SET value = $2, token = COALESCE($3::numeric, token)
            WHERE name = $1 AND ($3::numeric IS NULL OR token <= $3::numeric)`,
          [key, value, t],
        ),
      );
      if (r.rowCount === 0) throw new Error(`stale write refused: token ${token} is older than the last one applied`);
    },
    remove: () => command(() => pool.query(`DELETE FROM ${TABLE} WHERE name = $1`, [key])),
    close: () => pool.end(),
  };
}

module.exports = { openPostgresStore };

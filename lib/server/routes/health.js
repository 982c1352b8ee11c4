'use strict'
// GET /health: liveness without auth, with how busy each model is.

function register(app, ctx) {
  app.get('/health', async () => ({ status: 'ok', models: ctx.status() }))
}

module.exports = { register }

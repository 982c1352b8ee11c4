'use strict'
// GET /v1/models and GET /v1/models/:id, OpenAI's model objects.

function modelObject(entry) {
  return { id: entry.id, object: 'model', created: entry.created, owned_by: 'mlx-napi' }
}

function register(app, ctx) {
  app.get('/v1/models', async () => ({
    object: 'list',
    data: ctx.status().map((s) => modelObject(ctx.pick(s.kind, s.id))),
  }))
  // Ids may contain a slash (repo ids), hence the wildcard.
  app.get('/v1/models/*', async (request) => {
    const id = request.params['*']
    const entry = ctx.status().find((s) => s.id === id)
    return modelObject(ctx.pick(entry?.kind ?? 'llm', id))
  })
}

module.exports = { register }

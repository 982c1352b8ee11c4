'use strict'
// GET /v1/models and GET /v1/models/:id, OpenAI's model objects.
const { ApiError } = require('../errors.js')

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
    if (!entry) {
      throw new ApiError(404, `the model ${JSON.stringify(id)} does not exist on this server`, { param: 'model', code: 'model_not_found' })
    }
    return modelObject(ctx.pick(entry.kind, id))
  })
}

module.exports = { register }

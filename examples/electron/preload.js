'use strict'
// The renderer gets one function; the addon stays out of it (sandboxed renderers
// cannot load native modules, and should not).
const { contextBridge, ipcRenderer } = require('electron')

contextBridge.exposeInMainWorld('mlx', { transcribe: (file) => ipcRenderer.invoke('transcribe', file) })

-- Attach `nnprobe serve` to the current buffer the way a Neovim 0.7 user's config does, wait for
-- diagnostics, ask for code actions and a command, and print what arrived as JSON on stdout.
local bufnr = vim.api.nvim_get_current_buf()
local path = vim.api.nvim_buf_get_name(bufnr)
local cmd = vim.fn.json_decode(os.getenv("NNPROBE_SERVER_CMD"))

local id = vim.lsp.start_client({
  name = "nnprobe",
  cmd = cmd,
  root_dir = vim.fn.fnamemodify(path, ":h"),
  settings = { nnprobe = { debounce = 0 } },
})
vim.lsp.buf_attach_client(bufnr, id)

local result = { attached = id ~= nil, codes = {}, ranges = {}, hrefs = {} }
result.received = vim.wait(20000, function()
  return #vim.diagnostic.get(bufnr) > 0
end, 50)

for _, d in ipairs(vim.diagnostic.get(bufnr)) do
  local lsp = (d.user_data or {}).lsp or {}
  table.insert(result.codes, d.code or lsp.code)
  table.insert(result.ranges, { d.lnum, d.col, d.end_lnum, d.end_col })
  table.insert(result.hrefs, (lsp.codeDescription or {}).href or vim.NIL)
end

local client = vim.lsp.get_client_by_id(id)
local uri = vim.uri_from_bufnr(bufnr)
local actions = client.request_sync("textDocument/codeAction", {
  textDocument = { uri = uri },
  range = { start = { line = 12, character = 0 }, ["end"] = { line = 12, character = 0 } },
  context = { diagnostics = {} },
}, 10000, bufnr)
result.actions = {}
for _, action in ipairs((actions or {}).result or {}) do
  table.insert(result.actions, action.title)
end

local inspect = client.request_sync("workspace/executeCommand", {
  command = "nnprobe.inspect",
  arguments = { uri },
}, 10000, bufnr)
result.inspect = ((inspect or {}).result or {}).kind or vim.NIL

io.stdout:write("NNPROBE-RESULT " .. vim.fn.json_encode(result) .. "\n")
client.stop()
vim.wait(2000, function()
  return client.is_stopped()
end, 50)
vim.cmd("qa!")

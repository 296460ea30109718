-- cra for Neovim: starts the cra language server for C buffers and runs its actions at the cursor.
-- Works on Neovim 0.7.2 (vim.lsp.start_client + buf_attach_client) and 0.8+ (vim.lsp.start).
local M = {}

M.ACTIONS = { "plan", "scaffold", "implement", "tests", "document" }
local KIND_PREFIX = "refactor.rewrite.cra."
local DEFAULTS = {
  cmd = { "cra", "lsp" },
  trust = false,
  -- Sent to the server next to `trust`: `config` (overrides in cra.toml's schema) and `configFile`.
  settings = {},
  filetypes = { "c" },
  root_markers = { "cra.toml", "compile_commands.json", ".git", "Makefile" },
}

M.config = vim.deepcopy(DEFAULTS)
local clients_by_root = {} -- root dir -> client id (0.7 path; vim.lsp.start reuses clients itself)
M.last_request = nil -- { client_id, request_id } of the running action, for :CraCancel

local has_start = vim.lsp.start ~= nil
local has_method_calls = vim.fn.has("nvim-0.11") == 1 -- client:request() replaces client.request()

local function notify(message, level)
  vim.notify("cra: " .. message, level or vim.log.levels.INFO)
end

--- The object the server receives as initializationOptions and, under key "cra", as settings.
function M.server_options()
  local options = vim.deepcopy(M.config.settings)
  options.trust = M.config.trust
  if options.config == nil then
    options.config = vim.empty_dict()
  end
  return options
end

local function settings_payload()
  return { cra = M.server_options() }
end

local function validate(opts)
  if type(opts) ~= "table" then
    error("cra.setup: expected a table of options, got " .. type(opts), 0)
  end
  local ok, problem = pcall(vim.validate, {
    cmd = { opts.cmd, "table", true },
    trust = { opts.trust, "boolean", true },
    settings = { opts.settings, "table", true },
    filetypes = { opts.filetypes, "table", true },
    root_markers = { opts.root_markers, "table", true },
  })
  if not ok then
    error("cra.setup: " .. tostring(problem):gsub("^[^:]*:%d+: ", ""), 0)
  end
  if opts.cmd ~= nil then
    if #opts.cmd == 0 or type(opts.cmd[1]) ~= "string" or opts.cmd[1] == "" then
      error("cra.setup: `cmd` must be a list of strings with the server program first, e.g. {'cra', 'lsp'}", 0)
    end
    for i, part in ipairs(opts.cmd) do
      if type(part) ~= "string" then
        error(("cra.setup: `cmd[%d]` must be a string, got %s"):format(i, type(part)), 0)
      end
    end
  end
  if opts.settings ~= nil and opts.settings.config ~= nil and type(opts.settings.config) ~= "table" then
    error("cra.setup: `settings.config` must be a table in cra.toml's schema", 0)
  end
end

local function exists(path)
  return vim.loop.fs_stat(path) ~= nil
end

--- Nearest ancestor of the buffer's file holding one of the root markers, else the file's directory.
function M.root_dir(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local dir = name ~= "" and vim.fn.fnamemodify(name, ":p:h") or vim.fn.getcwd()
  local current = dir
  while true do
    for _, marker in ipairs(M.config.root_markers) do
      if exists(current .. "/" .. marker) then
        return current
      end
    end
    local parent = vim.fn.fnamemodify(current, ":h")
    if parent == current then
      return dir
    end
    current = parent
  end
end

local function client_config(root)
  return {
    name = "cra",
    cmd = M.config.cmd,
    root_dir = root,
    init_options = M.server_options(),
    -- 0.8+ answers workspace/configuration from here; every version pushes it once after initialize.
    settings = settings_payload(),
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    on_init = function(client)
      -- 0.8+ pushes `settings` after initialize itself; 0.7 leaves it to the plugin.
      if not has_start then
        client.notify("workspace/didChangeConfiguration", { settings = settings_payload() })
      end
    end,
  }
end

--- Start (or reuse) the cra client for the buffer's root and attach the buffer. Returns the client id.
function M.attach(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if vim.fn.executable(M.config.cmd[1]) ~= 1 then
    notify(("cannot start the server: `%s` is not an executable program (see cmd in setup())"):format(M.config.cmd[1]),
      vim.log.levels.ERROR)
    return nil
  end
  local root = M.root_dir(bufnr)
  if has_start then
    return vim.lsp.start(client_config(root), { bufnr = bufnr })
  end
  local id = clients_by_root[root]
  if id == nil or vim.lsp.get_client_by_id(id) == nil then
    id = vim.lsp.start_client(client_config(root))
    if id == nil then
      notify("the language server failed to start", vim.log.levels.ERROR)
      return nil
    end
    clients_by_root[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
  return id
end

--- The cra client attached to a buffer, or nil.
function M.client_for(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local clients = vim.lsp.get_clients and vim.lsp.get_clients({ bufnr = bufnr, name = "cra" })
    or vim.lsp.buf_get_clients(bufnr)
  for _, client in pairs(clients) do
    if client.name == "cra" then
      return client
    end
  end
  return nil
end

local function all_clients()
  local found = {}
  local list = vim.lsp.get_clients and vim.lsp.get_clients({ name = "cra" }) or vim.lsp.get_active_clients()
  for _, client in pairs(list) do
    if client.name == "cra" then
      table.insert(found, client)
    end
  end
  return found
end

local function request(client, method, params, handler, bufnr)
  if has_method_calls then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function client_notify(client, method, params)
  if has_method_calls then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

--- Push the current settings to every running cra client (0.7 never lets the server pull them).
function M.push_settings()
  for _, client in ipairs(all_clients()) do
    client.config.settings = settings_payload()
    if has_method_calls then
      client.settings = settings_payload() -- 0.11 answers workspace/configuration from here
    end
    -- A client still initializing gets the settings from its initializationOptions and on_init.
    if client.initialized then
      client_notify(client, "workspace/didChangeConfiguration", { settings = settings_payload() })
    end
  end
end

local function describe(action, result)
  if type(result) ~= "table" then
    return action .. ": done", vim.log.levels.INFO
  end
  if result.cancelled then
    return action .. ": cancelled", vim.log.levels.INFO
  end
  if result.ok == false then
    return action .. " failed: " .. tostring(result.error or "the server reported a failure"), vim.log.levels.ERROR
  end
  local verdict = type(result.verdict) == "table" and result.verdict.message or nil
  if type(verdict) == "string" and verdict ~= "" then
    return action .. ": done (" .. verdict .. ")", vim.log.levels.INFO
  end
  return action .. ": done", vim.log.levels.INFO
end

local function is_action(action)
  return vim.tbl_contains(M.ACTIONS, action)
end

--- Run the cra code action of kind `refactor.rewrite.cra.<action>` at the cursor.
--- opts.on_done(err, result) is called when the server answers (after its edit has been applied).
function M.run(action, opts)
  opts = opts or {}
  if not is_action(action) then
    error(("cra: unknown action %q; expected one of: %s"):format(tostring(action), table.concat(M.ACTIONS, ", ")), 0)
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client_for(bufnr)
  local function finish(err, result)
    if opts.on_done then
      opts.on_done(err, result)
    end
  end
  if client == nil then
    notify(action .. ": no cra language server is attached to this buffer", vim.log.levels.WARN)
    return finish("not attached", nil)
  end
  local kind = KIND_PREFIX .. action
  local params = vim.lsp.util.make_range_params(0, client.offset_encoding)
  params.context = { diagnostics = {}, only = { kind } }
  request(client, "textDocument/codeAction", params, function(err, actions)
    if err then
      notify(action .. ": code actions failed: " .. tostring(err.message or err), vim.log.levels.ERROR)
      return finish(err, nil)
    end
    local command = nil
    for _, candidate in ipairs(actions or {}) do
      if candidate.kind == kind and type(candidate.command) == "table" then
        command = candidate.command
        break
      end
    end
    if command == nil then
      notify(action .. ": not available here (put the cursor in a function)", vim.log.levels.WARN)
      return finish("unavailable", nil)
    end
    notify(("%s: running %s…"):format(action, command.title or command.command))
    local running = { client = client, action = action, finish = finish, cancelled = false }
    local ok, request_id = request(client, "workspace/executeCommand",
      { command = command.command, arguments = command.arguments }, function(exec_err, result)
        if M.last_request == running then
          M.last_request = nil
        end
        if running.cancelled then
          return -- already reported by M.cancel()
        end
        if exec_err then
          local cancelled = exec_err.code == -32800
          notify(action .. (cancelled and ": cancelled" or (" failed: " .. tostring(exec_err.message))),
            cancelled and vim.log.levels.INFO or vim.log.levels.ERROR)
          return finish(exec_err, nil)
        end
        local message, level = describe(action, result)
        notify(message, level)
        finish(nil, result)
      end, bufnr)
    if ok then
      running.id = request_id
      M.last_request = running
    else
      notify(action .. ": the language server is not running", vim.log.levels.ERROR)
      finish("not running", nil)
    end
  end, bufnr)
end

--- Cancel the running action ($/cancelRequest); the server stops the job and answers "cancelled".
function M.cancel()
  local running = M.last_request
  if running == nil then
    notify("no cra action is running")
    return
  end
  M.last_request = nil
  running.cancelled = true
  if has_method_calls then
    running.client:cancel_request(running.id)
  else
    running.client.cancel_request(running.id)
  end
  -- Neovim drops the server's RequestCancelled answer without calling the handler: report it here.
  notify(running.action .. ": cancelled")
  running.finish({ code = -32800, message = "cancelled" }, nil)
end

--- Trust the workspace: the server may then run build/test commands named by its config.
function M.trust(opts)
  opts = opts or {}
  M.config.trust = true
  M.push_settings()
  local client = M.client_for(0)
  if client == nil then
    if opts.on_done then
      opts.on_done("not attached", nil)
    end
    return
  end
  local argument = { uri = vim.uri_from_bufnr(0), symbol = vim.NIL, version = vim.NIL }
  request(client, "workspace/executeCommand", { command = "cra.trust", arguments = { argument } }, function(err, result)
    if opts.on_done then
      opts.on_done(err, result)
    end
  end, 0)
end

local function command_name(action)
  return "Cra" .. action:sub(1, 1):upper() .. action:sub(2)
end

function M.setup(opts)
  opts = opts or {}
  validate(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(DEFAULTS), opts)
  if opts.cmd then
    M.config.cmd = opts.cmd -- lists replace, not merge
  end
  for _, action in ipairs(M.ACTIONS) do
    vim.api.nvim_create_user_command(command_name(action), function()
      M.run(action)
    end, { desc = "cra: " .. action .. " at the cursor" })
  end
  vim.api.nvim_create_user_command("CraTrust", function()
    M.trust()
  end, { desc = "cra: trust this workspace" })
  vim.api.nvim_create_user_command("CraCancel", function()
    M.cancel()
  end, { desc = "cra: cancel the running action" })
  local group = vim.api.nvim_create_augroup("cra", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = M.config.filetypes,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  -- Buffers opened before setup() ran.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(M.config.filetypes, vim.bo[bufnr].filetype) then
      M.attach(bufnr)
    end
  end
  M.push_settings()
end

return M

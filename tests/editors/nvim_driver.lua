-- Drives the cra Neovim plugin headless for tests/editors/test_nvim.py. Reads a JSON spec (steps) from the file
-- named by $CRA_TEST_SPEC, runs the steps, writes what happened as JSON to spec.result and quits.
-- Works on Neovim 0.7.2 and 0.11.
local spec = vim.fn.json_decode(table.concat(vim.fn.readfile(os.getenv("CRA_TEST_SPEC")), "\n"))
local out = { steps = {}, notifications = {}, server_messages = {}, version = vim.version() }

local function write_result()
  vim.fn.writefile({ vim.fn.json_encode(out) }, spec.result)
end

vim.notify = function(message, level)
  table.insert(out.notifications, { message = message, level = level or 2 })
end
vim.lsp.handlers["window/showMessage"] = function(_, result)
  table.insert(out.server_messages, result.message)
  return vim.NIL
end

vim.opt.runtimepath:prepend(spec.plugin)
vim.cmd("filetype on")
local cra = require("cra")

local function wait(timeout_ms, predicate, what)
  if not vim.wait(timeout_ms, predicate, 20) then
    error("timed out waiting for " .. what, 0)
  end
end

local function notified(prefix)
  for _, n in ipairs(out.notifications) do
    if n.message:sub(1, #prefix) == prefix and not n.message:find("running", #prefix, true) then
      return n
    end
  end
  return nil
end

local function buffer_text()
  return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n") .. "\n"
end

local ops = {}

function ops.setup(step)
  cra.setup(step.opts)
  return { cmd = cra.config.cmd, server_options = cra.server_options() }
end

function ops.setup_error(step)
  local ok, err = pcall(cra.setup, step.opts)
  return { ok = ok, error = not ok and tostring(err) or nil }
end

function ops.edit(step)
  vim.cmd("edit " .. vim.fn.fnameescape(step.file))
  vim.api.nvim_win_set_cursor(0, { step.line, step.col or 0 })
  return { filetype = vim.bo.filetype }
end

-- Put the cursor on the first line containing step.text (lines move as edits land).
function ops.cursor(step)
  for index, line in ipairs(vim.api.nvim_buf_get_lines(0, 0, -1, false)) do
    if line:find(step.text, 1, true) then
      vim.api.nvim_win_set_cursor(0, { index, 0 })
      return { line = index }
    end
  end
  error("no line contains " .. step.text, 0)
end

function ops.wait_attached(step)
  wait(step.timeout_ms or 30000, function()
    local client = cra.client_for(0)
    return client ~= nil and client.server_capabilities ~= nil and client.server_capabilities.codeActionProvider ~= nil
  end, "the cra client to attach")
  local client = cra.client_for(0)
  return { name = client.name, commands = client.server_capabilities.executeCommandProvider.commands,
    root_dir = client.config.root_dir }
end

function ops.code_actions(step)
  local params = vim.lsp.util.make_range_params(0, cra.client_for(0).offset_encoding)
  params.context = { diagnostics = {} }
  local responses = vim.lsp.buf_request_sync(0, "textDocument/codeAction", params, step.timeout_ms or 60000)
  local actions = {}
  for _, response in pairs(responses or {}) do
    for _, action in ipairs(response.result or {}) do
      table.insert(actions, { kind = action.kind, title = action.title, command = action.command })
    end
  end
  return { actions = actions }
end

-- A :Cra* user command; done when the plugin reports the outcome through vim.notify.
function ops.command(step)
  vim.cmd(step.name)
  local prefix = "cra: " .. step.action
  wait(step.timeout_ms or 120000, function() return notified(prefix) ~= nil end, step.name .. " to finish")
  return { notification = notified(prefix), text = buffer_text() }
end

-- Start a :Cra* command, then :CraCancel it once the server is working on it.
function ops.command_then_cancel(step)
  vim.cmd(step.name)
  wait(30000, function() return cra.last_request ~= nil end, step.name .. " to be sent")
  vim.wait(step.delay_ms or 300, function() return false end, 20)
  vim.cmd("CraCancel")
  local prefix = "cra: " .. step.action
  wait(step.timeout_ms or 60000, function() return notified(prefix) ~= nil end, step.name .. " to stop")
  return { notification = notified(prefix), text = buffer_text(), running = cra.last_request ~= nil }
end

-- Neovim's own code action UI: 0.7 always asks vim.ui.select; 0.8+ can filter and apply directly.
function ops.native_code_action(step)
  local tick = vim.api.nvim_buf_get_changedtick(0)
  local offered = {}
  if vim.fn.has("nvim-0.8") == 1 then
    vim.lsp.buf.code_action({
      filter = function(action) return action.kind == step.kind end,
      apply = true,
    })
  else
    vim.ui.select = function(items, _, on_choice)
      for index, item in ipairs(items) do
        local action = item[2] -- 0.7 passes {client_id, action} pairs
        table.insert(offered, action.kind)
        if action.kind == step.kind then
          return on_choice(item, index)
        end
      end
      on_choice(nil, nil)
    end
    vim.lsp.buf.code_action({ only = { step.kind } })
  end
  wait(step.timeout_ms or 120000, function()
    return vim.api.nvim_buf_get_changedtick(0) ~= tick
  end, "the code action's edit")
  return { offered = offered, text = buffer_text() }
end

function ops.trust(step)
  local done, result = false, nil
  cra.trust({ on_done = function(err, res) done, result = true, { err = err, result = res } end })
  wait(step.timeout_ms or 30000, function() return done end, "cra.trust")
  return result
end

function ops.run_unknown()
  local ok, err = pcall(cra.run, "refactor")
  return { ok = ok, error = tostring(err) }
end

-- Change the plugin's settings and push them; done when the server has said something (or after wait_ms).
function ops.push_settings(step)
  local before = #out.server_messages
  cra.config.settings = step.settings
  cra.push_settings()
  vim.wait(step.wait_ms or 10000, function() return #out.server_messages > before end, 20)
  return { messages = vim.list_slice(out.server_messages, before + 1) }
end

function ops.wait_message(step)
  wait(step.timeout_ms or 30000, function()
    for _, m in ipairs(out.server_messages) do
      if m:find(step.text, 1, true) then return true end
    end
    return false
  end, "a server message containing " .. step.text)
  return {}
end

function ops.sleep(step)
  vim.wait(step.ms, function() return false end, 50)
  return {}
end

function ops.write()
  vim.cmd("write")
  return {}
end

local ok, err = xpcall(function()
  for _, step in ipairs(spec.steps) do
    local result = ops[step.op](step)
    table.insert(out.steps, { op = step.op, result = result or vim.NIL })
  end
end, debug.traceback)
out.ok = ok
out.error = ok and vim.NIL or err
write_result()
vim.cmd("qa!")

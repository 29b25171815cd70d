/* lua_string_compare: the Lua code that compares the bounded string
 * functions of src/rules/lua_string.c with Lua's own, shared by the unit test
 * (tests/unit/test_lua_string.c) and the fuzz target
 * (tests/fuzz/fuzz_pattern.c).
 *
 * It expects the globals REAL and OURS, each a table with find, match,
 * gmatch and gsub, and defines compare(name, s, p, a, b): it runs
 * REAL[name] and OURS[name] under pcall and returns nil when both gave the
 * same (the same values of the same types, or the same error message), else
 * a report of both. Argument errors are compared without the function name
 * (Lua's own are no longer in the string table, so they are named '?').
 * gmatch compares the whole iteration (at most 200 steps); for gsub, a ('F')
 * is a function that returns false, an integer or a string, 'FT' one that
 * returns a table, 'T' a table. A case where ours ran out of steps is not
 * compared (Lua's could run for a long time) and counts in SKIPPED. */
#ifndef SR_LUA_STRING_COMPARE_H
#define SR_LUA_STRING_COMPARE_H

static const char string_compare_lua[] = "local R, O = REAL, OURS\n"
                                         "SKIPPED = 0\n"
                                         "local function show(ok, ...)\n"
                                         "  local out = { ok and 'ok' or 'error' }\n"
                                         "  for i = 1, select('#', ...) do\n"
                                         "    local v = select(i, ...)\n"
                                         "    if type(v) == 'string' then\n"
                                         "      if not ok then v = R.gsub(v, \"to '[^']*'\", \"to '?'\") end\n"
                                         "      out[#out + 1] = string.format('%q', v)\n"
                                         "    else out[#out + 1] = math.type(v) or type(v); out[#out + 1] = "
                                         "tostring(v) end\n"
                                         "  end\n"
                                         "  return table.concat(out, ' ')\n"
                                         "end\n"
                                         "local repl_table = { a = 'X', ab = false, [''] = '<>', b = 7, [1] = "
                                         "'one', [2] = 2.5 }\n"
                                         "local function repl_fn(...)\n"
                                         "  local c = ...\n"
                                         "  if c == 'a' then return false end\n"
                                         "  if math.type(c) == 'integer' then return c * 10 end\n"
                                         "  return '<' .. select('#', ...) .. tostring(c) .. '>'\n"
                                         "end\n"
                                         "local function run(lib, name, s, p, a, b)\n"
                                         "  if name == 'gmatch' then\n"
                                         "    return show(pcall(function()\n"
                                         "      local out, it = {}, lib.gmatch(s, p, a)\n"
                                         "      for i = 1, 200 do\n"
                                         "        local r = table.pack(it())\n"
                                         "        if r[1] == nil then break end\n"
                                         "        out[#out + 1] = show(true, table.unpack(r, 1, r.n))\n"
                                         "      end\n"
                                         "      return table.concat(out, ' | ')\n"
                                         "    end))\n"
                                         "  elseif name == 'gsub' then\n"
                                         "    if a == 'F' then a = repl_fn elseif a == 'T' then a = repl_table\n"
                                         "    elseif a == 'FT' then a = function() return {} end end\n"
                                         "    return show(pcall(lib.gsub, s, p, a, b))\n"
                                         "  end\n"
                                         "  return show(pcall(lib[name], s, p, a, b))\n"
                                         "end\n"
                                         "function compare(name, s, p, a, b)\n"
                                         "  local ours = run(O, name, s, p, a, b)\n"
                                         "  if R.find(ours, 'pattern too complex: more than', 1, true) then SKIPPED "
                                         "= SKIPPED + 1; return nil end\n"
                                         "  local real = run(R, name, s, p, a, b)\n"
                                         "  if ours == real then return nil end\n"
                                         "  return string.format('%s(%q, %q, %s, %s)\\n  lua:  %s\\n  ours: %s', "
                                         "name, s, p,\n"
                                         "    tostring(a), tostring(b), real, ours)\n"
                                         "end\n";

#endif

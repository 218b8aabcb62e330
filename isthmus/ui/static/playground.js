// The playground: the browser calls the gateway's own OpenAI-compatible endpoints with the virtual key given.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let key = "";

  function headers() {
    return { "authorization": "Bearer " + key, "content-type": "application/json" };
  }

  function say(element, text) {
    element.textContent = text;
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || JSON.stringify(body);
    } catch (e) {
      return response.status + " " + response.statusText;
    }
  }

  function fill(select, names, empty) {
    select.replaceChildren();
    if (!names.length) {
      const option = document.createElement("option");
      option.value = "";
      option.textContent = empty;
      select.appendChild(option);
      return;
    }
    for (const name of names) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      select.appendChild(option);
    }
  }

  async function useKey() {
    key = $("pg-key").value.trim();
    const status = $("pg-key-status");
    if (!key) {
      say(status, "Give a virtual key first.");
      return;
    }
    say(status, "Loading what this key may use…");
    const [models, tools] = await Promise.all([
      fetch("/v1/models", { headers: headers() }),
      fetch("/v1/mcp/tools", { headers: headers() }),
    ]);
    if (!models.ok) {
      say(status, "Models: " + (await errorText(models)));
      return;
    }
    const modelNames = (await models.json()).data.map((m) => m.id);
    fill($("pg-model"), modelNames, "(no model allowed)");
    let toolNames = [];
    if (tools.ok) {
      toolNames = (await tools.json()).data.map((t) => t.function.name);
    }
    fill($("pg-tool-name"), toolNames, "(no tool allowed)");
    say(status, modelNames.length + " models and " + toolNames.length + " tools available to this key.");
  }

  async function chat(event) {
    event.preventDefault();
    const answer = $("pg-answer");
    const meta = $("pg-chat-meta");
    say(answer, "");
    say(meta, "");
    const messages = [];
    const system = $("pg-system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push({ role: "user", content: $("pg-message").value });
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ model: $("pg-model").value, messages: messages, stream: true,
                             stream_options: { include_usage: true } }),
    });
    if (!response.ok) {
      say(meta, "Refused: " + (await errorText(response)));
      return;
    }
    const route = response.headers.get("x-isthmus-route");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let usage = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices || []) {
            if (choice.delta && choice.delta.content) answer.append(choice.delta.content);
          }
        }
      }
    }
    const parts = [];
    if (route) parts.push("route " + route);
    if (usage) parts.push(usage.prompt_tokens + " tokens in, " + usage.completion_tokens + " out");
    say(meta, parts.join(" · "));
  }

  async function callTool(event) {
    event.preventDefault();
    const result = $("pg-result");
    let args;
    try {
      args = JSON.parse($("pg-args").value || "{}");
    } catch (e) {
      say(result, "Arguments are not valid JSON: " + e.message);
      return;
    }
    const response = await fetch("/v1/mcp/tools/call", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ name: $("pg-tool-name").value, arguments: args }),
    });
    if (!response.ok) {
      say(result, "Refused: " + (await errorText(response)));
      return;
    }
    say(result, JSON.stringify(await response.json(), null, 2));
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("pg-load").addEventListener("click", useKey);
    $("pg-key").addEventListener("keydown", (e) => { if (e.key === "Enter") useKey(); });
    $("pg-chat").addEventListener("submit", chat);
    $("pg-tool").addEventListener("submit", callTool);
  });
})();

// The little script the pages use; every page also works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // a form sends once: a double click or a second tap does not submit twice (the Idempotency-Key
  // in the form makes a resent submission return the same petition anyway)
  document.querySelectorAll("form[data-once]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
      setTimeout(() => form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; }), 0);
    });
  });

  // town -> village: the village list shows the chosen town's villages only
  const town = document.querySelector("[data-town-select]");
  const village = document.querySelector("[data-village-select]");
  if (town && village) {
    const filter = () => {
      village.querySelectorAll("optgroup").forEach((group) => {
        const shown = !town.value || group.dataset.town === town.value;
        group.hidden = !shown;
        group.disabled = !shown;
      });
      const chosen = village.selectedOptions[0];
      if (chosen && chosen.parentElement.disabled) village.value = "";
    };
    town.addEventListener("change", filter);
    village.addEventListener("change", () => {
      const group = village.selectedOptions[0] && village.selectedOptions[0].parentElement;
      if (group && group.dataset.town && town.value !== group.dataset.town) { town.value = group.dataset.town; filter(); }
    });
    filter();
  }

  // the phone's position, when the citizen allows it
  const locate = document.querySelector("[data-locate]");
  if (locate) {
    const status = document.querySelector("[data-locate-status]");
    locate.addEventListener("click", () => {
      if (!navigator.geolocation) { status.textContent = "此设备不支持定位"; return; }
      status.textContent = "正在定位…";
      navigator.geolocation.getCurrentPosition(
        (pos) => {
          document.getElementById("lat").value = pos.coords.latitude.toFixed(6);
          document.getElementById("lon").value = pos.coords.longitude.toFixed(6);
          status.textContent = "已定位";
        },
        () => { status.textContent = "定位失败，可手动填写或只选择村（社区）"; },
        { enableHighAccuracy: true, timeout: 10000 },
      );
    });
  }

  // village -> its grids (transfer and triage forms)
  document.querySelectorAll("[data-grid-village]").forEach((select) => {
    const grids = document.getElementById(select.dataset.gridVillage);
    select.addEventListener("change", async () => {
      grids.length = 1;
      if (!select.value) return;
      const resp = await fetch(`/staff/areas/villages/${encodeURIComponent(select.value)}/grids`, { credentials: "same-origin" });
      if (!resp.ok) return;
      (await resp.json()).grids.forEach((g) => grids.add(new Option(g.grid_name, g.grid_id)));
    });
  });

  // live countdowns: time left to a deadline, or time past it
  const counters = document.querySelectorAll("[data-deadline]");
  const tick = () => {
    const now = Date.now();
    counters.forEach((el) => {
      const left = Date.parse(el.dataset.deadline) - now;
      const out = el.querySelector("[data-left]");
      if (!out || Number.isNaN(left)) return;
      const abs = Math.abs(left);
      const h = Math.floor(abs / 3600000), m = Math.floor((abs % 3600000) / 60000);
      const text = h >= 48 ? `${Math.floor(h / 24)}天${h % 24}小时` : `${h}小时${m}分`;
      out.textContent = left >= 0 ? `剩余 ${text}` : `已超时 ${text}`;
      if (left < 0) el.dataset.state = "breached";
    });
  };
  if (counters.length) { tick(); setInterval(tick, 30000); }
});

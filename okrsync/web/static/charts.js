// Chart colours, shared by the pages' Chart.js charts (kept in step with style.css).
export const COLORS = {
  value: "#1f6fb2",
  valueFill: "rgba(31, 111, 178, 0.12)",
  selected: "#d9480f",
  target: "#2b8a3e",
  pace: "#6c757d",
  held: "#e8a317",
  grid: "rgba(0, 0, 0, 0.07)",
};

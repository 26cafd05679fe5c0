// A labelled contact sheet: generated images in rows and columns, column labels above, row labels
// on the left. Labels are SVG text rendered by sharp (librsvg), so no font files ship with us.
import sharp from 'sharp';

export interface GridCell {
  /** Interleaved 8-bit RGB. */
  data: Buffer;
  width: number;
  height: number;
}

export interface GridLayout {
  width: number;
  height: number;
  /** Where the first image sits and how far apart cells are. */
  left: number;
  top: number;
  cellWidth: number;
  cellHeight: number;
  fontSize: number;
}

// An estimate of DejaVu Sans' mean advance (the usual fallback for sans-serif): wide enough that
// labels are not clipped, without measuring text.
const ADVANCE = 0.62;

function textWidth(text: string, fontSize: number): number {
  return Math.ceil([...text].length * fontSize * ADVANCE);
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function gridLayout(columns: string[], rows: string[], width: number, height: number): GridLayout {
  const fontSize = Math.max(12, Math.round(Math.min(width, height) / 16));
  const pad = Math.round(fontSize / 2);
  const labelled = rows.some((r) => r !== '');
  const left = labelled ? Math.max(...rows.map((r) => textWidth(r, fontSize))) + 2 * pad : 0;
  const cellWidth = Math.max(width, ...columns.map((c) => textWidth(c, fontSize) + 2 * pad));
  const top = Math.round(fontSize * 2);
  return { width: left + columns.length * cellWidth, height: top + rows.length * height, left, top, cellWidth, cellHeight: height, fontSize };
}

/** cells[row][column], all of one size → a PNG (no text chunk; the caller adds it). */
export async function renderGrid(cells: GridCell[][], columns: string[], rows: string[]): Promise<{ png: Buffer; layout: GridLayout }> {
  const { width: w, height: h } = cells[0]![0]!;
  const layout = gridLayout(columns, rows, w, h);
  const { fontSize, left, top, cellWidth } = layout;
  const text = (x: number, y: number, label: string, anchor: string) =>
    `<text x="${x}" y="${y}" text-anchor="${anchor}" dominant-baseline="middle">${escapeXml(label)}</text>`;
  const labels = [
    ...columns.map((c, i) => text(left + i * cellWidth + cellWidth / 2, top / 2, c, 'middle')),
    ...rows.map((r, j) => text(Math.round(fontSize / 2), top + j * h + h / 2, r, 'start')),
  ];
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${layout.height}">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<g font-family="DejaVu Sans, Arial, Helvetica, sans-serif" font-size="${fontSize}" fill="black">${labels.join('')}</g></svg>`;
  const composite = cells.flatMap((row, j) =>
    row.map((cell, i) => ({
      input: cell.data,
      raw: { width: cell.width, height: cell.height, channels: 3 as const },
      left: left + i * cellWidth + Math.floor((cellWidth - cell.width) / 2),
      top: top + j * h,
    })),
  );
  const png = await sharp(Buffer.from(svg)).composite(composite).removeAlpha().png().toBuffer();
  return { png, layout };
}

export const metadata = { title: 'batch-event-processor on the edge' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}

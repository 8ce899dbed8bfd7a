export default function Page() {
  return <p>Every request to this page sent one event from the edge middleware.</p>;
}

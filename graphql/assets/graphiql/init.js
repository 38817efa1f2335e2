// Starts GraphiQL against this instance's /graphql (HTTP for queries and mutations, a WebSocket
// for subscriptions). A file of its own, not an inline script, so the page's
// Content-Security-Policy can allow scripts from this origin only.
(function () {
  'use strict';
  var http = new URL('/graphql', window.location.origin);
  var socket = new URL('/graphql', window.location.origin);
  socket.protocol = socket.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({
    url: http.toString(),
    subscriptionUrl: socket.toString(),
  });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      // Every operation, introspection included, needs a key: show where it goes.
      defaultHeaders: '{\n  "Authorization": "Bearer <your API key>"\n}',
      // Never keep the key in the browser's storage.
      shouldPersistHeaders: false,
    })
  );
})();

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { NodeProvider } from './node/context';
import { rpcUrlFromPage } from './node/rpcUrl';
import { NodeWatcher } from './node/watcher';
import './styles.css';

const watcher = new NodeWatcher(rpcUrlFromPage().url);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <NodeProvider watcher={watcher}>
      <App />
    </NodeProvider>
  </StrictMode>,
);
